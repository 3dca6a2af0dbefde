//! Which bus endpoint reaches a discovered node (CONTRACT section 6, "Routing"), and which
//! nodes a `label:` target stands for: every node but this one whose labels contain the
//! selector's pairs and whose `services` include the service.
//!
//! - **Same namespace**: the node's own bus URL.
//! - **A relay reaching a node whose `advertise_relay` it matches**: that node's bus URL,
//!   whatever its namespace.
//! - **Another namespace**: its gateway with the lowest `priority` whose `match` this node
//!   satisfies (`namespace` against this node's namespace, every other key against its
//!   labels).
//! - **No such gateway**: a relay, one whose labels contain the `advertise_relay` labels in
//!   question: this node's own advertised relay first with `prefer = "own"`, the target's
//!   first with `prefer = "peer"`, the other when the first finds none. A node already on the
//!   session's path is never chosen, so a relay does not send a session back where it came
//!   from.
//!
//! Every route names the node it is for (`namespace/name`): the session's `Open` carries it,
//! so a relay knows where to carry it on, and a node that is not the one meant refuses it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use busway_config::{NodeConfig, RelayPrefer};
use busway_discovery::{NodeRecord, View};
use busway_net::EndpointAddr;

/// Who is asking, as routing needs it: read from the configuration on every view change, so a
/// reload that changes labels or `[relay]` routes by the new values.
#[derive(Clone, Debug)]
pub(crate) struct Me {
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// `[relay] enabled`.
    pub relay: bool,
    pub prefer: RelayPrefer,
    /// `[relay] advertise` labels: the relays this node recommends (its "own" relay).
    pub advertise: Option<BTreeMap<String, String>>,
}

impl Me {
    pub fn of(cfg: &NodeConfig, hostname: &str) -> Me {
        Me {
            namespace: cfg.node.namespace.clone(),
            name: cfg.node.name.clone(),
            hostname: hostname.to_string(),
            labels: cfg.node.labels.clone(),
            relay: cfg.relay.enabled,
            prefer: cfg.relay.prefer,
            advertise: cfg.relay.advertise.as_ref().map(|a| a.labels.clone()),
        }
    }

    fn is(&self, n: &NodeRecord) -> bool {
        n.namespace == self.namespace && n.name == self.name
    }
}

/// Why a selected node has no endpoint here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Another namespace, and neither a gateway this node matches nor a relay.
    NoRoute,
    /// No bus URL this node can dial: none, an unspecified address (0.0.0.0), a host name,
    /// or a Unix socket of another host.
    NoUsableUrl,
}

impl Unreachable {
    pub fn says(&self) -> &'static str {
        match self {
            Unreachable::NoRoute => "in another namespace, with no gateway this node matches and no relay to reach it",
            Unreachable::NoUsableUrl => "without a bus URL this node can dial (an unspecified address, a host name, or another host's Unix socket)",
        }
    }
}

/// An endpoint and the node (`namespace/name`) it reaches.
pub(crate) type Routed = (EndpointAddr, Arc<str>);

/// A node's `namespace/name`, as an `Open`'s path and `to` name it.
pub(crate) fn key_of(n: &NodeRecord) -> Arc<str> {
    format!("{}/{}", n.namespace, n.name).into()
}

/// The endpoints `sel` selects for `service`, one per node with the node's key, in the view's
/// (key) order; and the nodes selected but unreachable from here, with why.
pub(crate) fn endpoints(
    view: &View,
    me: &Me,
    sel: &BTreeMap<String, String>,
    service: &str,
) -> (Vec<Routed>, Vec<(String, Unreachable)>) {
    let mut eps = Vec::new();
    let mut unreachable = Vec::new();
    for (key, n) in view.nodes.iter() {
        if me.is(n) || !selects(sel, service, n) {
            continue;
        }
        match reach(view, me, n, &[]) {
            Ok(ep) => eps.push((ep, key_of(n))),
            Err(why) => unreachable.push((key.clone(), why)),
        }
    }
    (eps, unreachable)
}

/// The node of the view named `to` (`namespace/name`).
pub(crate) fn find<'v>(view: &'v View, to: &str) -> Option<&'v NodeRecord> {
    let (ns, name) = to.split_once('/')?;
    view.nodes
        .values()
        .find(|n| n.namespace == ns && n.name == name)
        .map(|n| &**n)
}

/// The first node of the view, other than this one and those on `avoid`, that serves
/// `service` and can be reached: where a relay carries a session that names no node.
pub(crate) fn any_serving(view: &View, me: &Me, service: &str, avoid: &[String]) -> Option<Routed> {
    view.nodes.values().find_map(|n| {
        let usable = !me.is(n) && n.services.iter().any(|s| s == service) && !on_path(avoid, n);
        usable
            .then(|| reach(view, me, n, avoid).ok().map(|ep| (ep, key_of(n))))
            .flatten()
    })
}

/// How this node reaches `n`; `avoid` lists the nodes the session already passed, which are
/// never used as relays.
pub(crate) fn reach(
    view: &View,
    me: &Me,
    n: &NodeRecord,
    avoid: &[String],
) -> Result<EndpointAddr, Unreachable> {
    let relay_for_it = me.relay
        && n.advertise_relay.as_ref().is_some_and(|a| {
            contains(&me.labels, &a.labels) && a.name.as_ref().is_none_or(|x| *x == me.name)
        });
    if n.namespace == me.namespace || relay_for_it {
        return bus_endpoint(n, &me.hostname).ok_or(Unreachable::NoUsableUrl);
    }
    if let Some(ep) = gateway(n, me) {
        return Ok(ep);
    }
    let own = me.advertise.as_ref();
    let peer = n.advertise_relay.as_ref().map(|a| &a.labels);
    let order = match me.prefer {
        RelayPrefer::Own => [own, peer],
        RelayPrefer::Peer => [peer, own],
    };
    order
        .into_iter()
        .flatten()
        .find_map(|labels| relay(view, me, labels, n, avoid))
        .ok_or(Unreachable::NoRoute)
}

/// `n`'s gateway with the lowest priority whose `match` this node satisfies and that it can
/// dial (ties: the first listed).
fn gateway(n: &NodeRecord, me: &Me) -> Option<EndpointAddr> {
    let mut gws: Vec<_> = n
        .gateways
        .iter()
        .filter(|g| {
            g.r#match.iter().all(|(k, v)| {
                if k == "namespace" {
                    *v == me.namespace
                } else {
                    me.labels.get(k) == Some(v)
                }
            })
        })
        .collect();
    gws.sort_by_key(|g| g.priority);
    gws.into_iter()
        .find_map(|g| dialable(&g.address, &n.host.hostname, &me.hostname))
}

/// A relay whose labels contain `labels`, for reaching `target`: not this node, not the target,
/// not one the session passed; reached through its gateway when it has one this node matches,
/// else through its bus URL. The first such in key order.
fn relay(
    view: &View,
    me: &Me,
    labels: &BTreeMap<String, String>,
    target: &NodeRecord,
    avoid: &[String],
) -> Option<EndpointAddr> {
    view.nodes.values().find_map(|r| {
        let is_target = r.namespace == target.namespace && r.name == target.name;
        if !r.relay || me.is(r) || is_target || on_path(avoid, r) || !contains(&r.labels, labels) {
            return None;
        }
        if r.namespace != me.namespace {
            if let Some(ep) = gateway(r, me) {
                return Some(ep);
            }
        }
        bus_endpoint(r, &me.hostname)
    })
}

/// Whether `n` is on a session's path (entries `namespace/name#INSTANCE`).
fn on_path(path: &[String], n: &NodeRecord) -> bool {
    path.iter().any(|p| {
        crate::relay::node_of(p).split_once('/') == Some((n.namespace.as_str(), n.name.as_str()))
    })
}

/// Whether `have` contains every pair of `want`.
fn contains(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Whether `sel` selects node `n` for `service`.
fn selects(sel: &BTreeMap<String, String>, service: &str, n: &NodeRecord) -> bool {
    contains(&n.labels, sel) && n.services.iter().any(|s| s == service)
}

/// The bus URL to dial `n` by: its first `tcp://IP:PORT` with a specified address, else its
/// first `unix://` path when it runs on this host. One per node, so that a fan-out reaches
/// each node once however many listeners it has.
fn bus_endpoint(n: &NodeRecord, my_host: &str) -> Option<EndpointAddr> {
    let tcp = n.bus.iter().find_map(|u| tcp_url(u));
    tcp.or_else(|| {
        n.bus
            .iter()
            .find_map(|u| unix_url(u, &n.host.hostname, my_host))
    })
}

/// A URL of a node on `their_host` this node (on `my_host`) can dial.
fn dialable(url: &str, their_host: &str, my_host: &str) -> Option<EndpointAddr> {
    tcp_url(url).or_else(|| unix_url(url, their_host, my_host))
}

fn tcp_url(u: &str) -> Option<EndpointAddr> {
    let a: SocketAddr = u.strip_prefix("tcp://")?.parse().ok()?;
    (!a.ip().is_unspecified() && a.port() != 0).then_some(EndpointAddr::Tcp(a))
}

/// A Unix socket is only reachable on its own host.
fn unix_url(u: &str, their_host: &str, my_host: &str) -> Option<EndpointAddr> {
    let p = u.strip_prefix("unix://")?;
    (their_host == my_host && !p.is_empty()).then(|| EndpointAddr::Unix(p.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use busway_discovery::{AdvertiseRelay, Gateway, Host};
    use std::sync::Arc;

    fn node(ns: &str, name: &str, labels: &[(&str, &str)], bus: &[&str], host: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            namespace: ns.into(),
            version: "0.1.0".into(),
            labels: map(labels),
            annotations: BTreeMap::new(),
            host: Host {
                hostname: host.into(),
                pid: 1,
            },
            bus: bus.iter().map(|s| s.to_string()).collect(),
            services: vec!["chat".into()],
            gateways: vec![],
            relay: false,
            advertise_relay: None,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn view(nodes: Vec<NodeRecord>) -> View {
        View {
            nodes: Arc::new(
                nodes
                    .into_iter()
                    .map(|n| (format!("/b/nodes/{}/{}", n.namespace, n.name), Arc::new(n)))
                    .collect(),
            ),
            revision: 1,
        }
    }

    fn me() -> Me {
        Me {
            namespace: "prod".into(),
            name: "ingress".into(),
            hostname: "h1".into(),
            labels: map(&[("zone", "a")]),
            relay: false,
            prefer: RelayPrefer::Own,
            advertise: None,
        }
    }

    fn tcp(s: &str) -> EndpointAddr {
        EndpointAddr::Tcp(s.parse().unwrap())
    }

    fn gw(address: &str, priority: u32, m: &[(&str, &str)]) -> Gateway {
        Gateway {
            address: address.into(),
            priority,
            r#match: map(m),
        }
    }

    fn relay_node(ns: &str, name: &str, labels: &[(&str, &str)], bus: &str) -> NodeRecord {
        let mut r = node(ns, name, labels, &[bus], "h2");
        r.relay = true;
        r.services = vec![];
        r
    }

    fn advertising(mut n: NodeRecord, labels: &[(&str, &str)]) -> NodeRecord {
        n.advertise_relay = Some(AdvertiseRelay {
            labels: map(labels),
            name: None,
        });
        n
    }

    #[test]
    fn selects_by_labels_and_service_excluding_itself() {
        let chat = [("app", "chat")];
        let mut other_service = node("prod", "db", &chat, &["tcp://10.0.0.9:7100"], "h2");
        other_service.services = vec!["db".into()];
        let v = view(vec![
            node(
                "prod",
                "a",
                &[("app", "chat"), ("zone", "x")],
                &["tcp://10.0.0.1:7100"],
                "h2",
            ),
            node(
                "prod",
                "b",
                &[("app", "mail")],
                &["tcp://10.0.0.2:7100"],
                "h2",
            ),
            node("prod", "ingress", &chat, &["tcp://10.0.0.3:7100"], "h1"),
            other_service,
        ]);
        let sel = map(&[("app", "chat")]);
        let (eps, unreachable) = endpoints(&v, &me(), &sel, "chat");
        assert_eq!(eps, vec![(tcp("10.0.0.1:7100"), "prod/a".into())]);
        assert!(unreachable.is_empty());
        let none = map(&[("zone", "y")]);
        assert!(endpoints(&v, &me(), &none, "chat").0.is_empty());
    }

    #[test]
    fn one_usable_url_per_node_and_unroutable_namespaces_left_out() {
        let chat = [("app", "chat")];
        let v = view(vec![
            node(
                "prod",
                "a",
                &chat,
                &[
                    "tcp://0.0.0.0:7100",
                    "tcp://10.0.0.1:7100",
                    "tcp://10.0.0.1:7101",
                ],
                "h2",
            ),
            node("prod", "b", &chat, &["unix:///run/b.sock"], "h1"),
            node("prod", "c", &chat, &["unix:///run/c.sock"], "h3"),
            node("prod", "d", &chat, &["tcp://bus.example:7100"], "h2"),
            node("edge", "e", &chat, &["tcp://10.0.0.5:7100"], "h2"),
        ]);
        let sel = map(&chat);
        let (eps, unreachable) = endpoints(&v, &me(), &sel, "chat");
        assert_eq!(
            eps,
            vec![
                (tcp("10.0.0.1:7100"), "prod/a".into()),
                (EndpointAddr::Unix("/run/b.sock".into()), "prod/b".into()),
            ]
        );
        assert_eq!(
            unreachable,
            vec![
                ("/b/nodes/edge/e".to_string(), Unreachable::NoRoute),
                ("/b/nodes/prod/c".to_string(), Unreachable::NoUsableUrl),
                ("/b/nodes/prod/d".to_string(), Unreachable::NoUsableUrl),
            ]
        );
    }

    #[test]
    fn another_namespace_goes_through_the_best_matching_gateway() {
        let mut e = node("edge", "e", &[], &["tcp://10.0.0.5:7100"], "h2");
        e.gateways = vec![
            gw("tcp://203.0.113.9:7100", 1, &[("namespace", "other")]),
            gw("tcp://203.0.113.7:7100", 20, &[]),
            gw(
                "tcp://203.0.113.5:7100",
                10,
                &[("namespace", "prod"), ("zone", "a")],
            ),
            gw("tcp://203.0.113.6:7100", 5, &[("zone", "b")]),
        ];
        let v = view(vec![e.clone()]);
        // Priority 1 and 5 do not match (namespace, label); 10 beats 20.
        assert_eq!(reach(&v, &me(), &e, &[]), Ok(tcp("203.0.113.5:7100")));
        let mut b = me();
        b.labels = map(&[("zone", "b")]);
        assert_eq!(reach(&v, &b, &e, &[]), Ok(tcp("203.0.113.6:7100")));
        // A Unix gateway of another host cannot be dialled.
        e.gateways = vec![gw("unix:///run/gw.sock", 0, &[])];
        assert_eq!(reach(&v, &me(), &e, &[]), Err(Unreachable::NoRoute));
        let mut local = e.clone();
        local.host.hostname = "h1".into();
        assert_eq!(
            reach(&v, &me(), &local, &[]),
            Ok(EndpointAddr::Unix("/run/gw.sock".into()))
        );
    }

    #[test]
    fn without_a_gateway_a_relay_as_prefer_says_and_the_other_when_it_finds_none() {
        let target = advertising(
            node("edge", "e", &[], &["tcp://10.0.0.5:7100"], "h2"),
            &[("role", "edge-relay")],
        );
        let own = relay_node(
            "prod",
            "r-own",
            &[("role", "prod-relay")],
            "tcp://10.0.1.1:7100",
        );
        let theirs = relay_node(
            "edge",
            "r-edge",
            &[("role", "edge-relay")],
            "tcp://10.0.2.1:7100",
        );
        let v = view(vec![target.clone(), own.clone(), theirs.clone()]);
        let mut m = me();
        m.advertise = Some(map(&[("role", "prod-relay")]));
        assert_eq!(reach(&v, &m, &target, &[]), Ok(tcp("10.0.1.1:7100")));
        m.prefer = RelayPrefer::Peer;
        assert_eq!(reach(&v, &m, &target, &[]), Ok(tcp("10.0.2.1:7100")));
        // The preferred one finds none: the other.
        let v2 = view(vec![target.clone(), own.clone()]);
        assert_eq!(reach(&v2, &m, &target, &[]), Ok(tcp("10.0.1.1:7100")));
        // A relay the session passed is never used again.
        assert_eq!(
            reach(&v2, &m, &target, &["prod/r-own#0badcafe".into()]),
            Err(Unreachable::NoRoute)
        );
        // A node that is not a relay is not one, whatever its labels.
        let mut fake = own.clone();
        fake.relay = false;
        let v3 = view(vec![target.clone(), fake]);
        assert_eq!(reach(&v3, &m, &target, &[]), Err(Unreachable::NoRoute));
    }

    #[test]
    fn a_relay_reaches_the_nodes_that_advertise_it_directly_and_others_onwards() {
        let target = advertising(
            node("edge", "e", &[], &["tcp://10.0.0.5:7100"], "h2"),
            &[("role", "edge-relay")],
        );
        let next = relay_node(
            "edge-relays",
            "r2",
            &[("role", "edge-relay")],
            "tcp://10.0.2.1:7100",
        );
        let v = view(vec![target.clone(), next.clone()]);
        let mut r1 = me();
        r1.name = "r1".into();
        r1.relay = true;
        r1.labels = map(&[("role", "prod-relay")]);
        // r1 is not the target's relay: on to r2, the one it advertises.
        assert_eq!(reach(&v, &r1, &target, &[]), Ok(tcp("10.0.2.1:7100")));
        // r2 is: straight to the target's bus URL, across namespaces.
        let mut r2 = r1.clone();
        r2.name = "r2".into();
        r2.namespace = "edge-relays".into();
        r2.labels = map(&[("role", "edge-relay")]);
        assert_eq!(reach(&v, &r2, &target, &[]), Ok(tcp("10.0.0.5:7100")));
        // Not while relaying is off.
        r2.relay = false;
        assert_eq!(reach(&v, &r2, &target, &[]), Err(Unreachable::NoRoute));
    }

    #[test]
    fn finds_nodes_by_key_and_any_node_serving_a_service() {
        let a = node("prod", "a", &[], &["tcp://10.0.0.1:7100"], "h2");
        let b = node("prod", "b", &[], &["tcp://10.0.0.2:7100"], "h2");
        let v = view(vec![a, b]);
        assert_eq!(find(&v, "prod/b").map(|n| n.name.as_str()), Some("b"));
        assert!(find(&v, "prod/zz").is_none());
        assert!(find(&v, "nonsense").is_none());
        assert_eq!(
            any_serving(&v, &me(), "chat", &["prod/a".into()]),
            Some((tcp("10.0.0.2:7100"), "prod/b".into()))
        );
        assert_eq!(any_serving(&v, &me(), "mail", &[]), None);
    }
}

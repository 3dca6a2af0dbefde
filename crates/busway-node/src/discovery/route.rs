//! Which bus endpoints a `label:` target stands for, given the discovered nodes (CONTRACT
//! section 6, "Routing"): every node but this one whose labels contain the selector's pairs and
//! whose `services` include the service.
//!
//! A node in this node's namespace is reached through its own bus URL. Nodes of other
//! namespaces are reached through gateways or relays, which this version does not route
//! through yet: they are left out (and said so once per node, by the caller).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use busway_discovery::{NodeRecord, View};
use busway_net::EndpointAddr;

/// Who is asking: this node's namespace, name and host name.
#[derive(Clone, Debug)]
pub(crate) struct Me {
    pub namespace: String,
    pub name: String,
    pub hostname: String,
}

/// Why a selected node has no endpoint here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Another namespace: gateways and relays are not routed through yet.
    OtherNamespace,
    /// No bus URL this node can dial: none, an unspecified address (0.0.0.0), a host name,
    /// or a Unix socket of another host.
    NoUsableUrl,
}

/// The endpoints `sel` selects for `service`, one per node, in the view's (key) order; and
/// the nodes selected but unreachable from here, with why.
pub(crate) fn endpoints(
    view: &View,
    me: &Me,
    sel: &BTreeMap<String, String>,
    service: &str,
) -> (Vec<EndpointAddr>, Vec<(String, Unreachable)>) {
    let mut eps = Vec::new();
    let mut unreachable = Vec::new();
    for (key, n) in view.nodes.iter() {
        if (n.namespace == me.namespace && n.name == me.name) || !selects(sel, service, n) {
            continue;
        }
        if n.namespace != me.namespace {
            unreachable.push((key.clone(), Unreachable::OtherNamespace));
            continue;
        }
        match bus_endpoint(n, &me.hostname) {
            Some(ep) if !eps.contains(&ep) => eps.push(ep),
            Some(_) => {}
            None => unreachable.push((key.clone(), Unreachable::NoUsableUrl)),
        }
    }
    (eps, unreachable)
}

/// Whether `sel` selects node `n` for `service`.
fn selects(sel: &BTreeMap<String, String>, service: &str, n: &NodeRecord) -> bool {
    sel.iter().all(|(k, v)| n.labels.get(k) == Some(v)) && n.services.iter().any(|s| s == service)
}

/// The bus URL to dial `n` by: its first `tcp://IP:PORT` with a specified address, else its
/// first `unix://` path when it runs on this host. One per node, so that a fan-out reaches
/// each node once however many listeners it has.
fn bus_endpoint(n: &NodeRecord, my_host: &str) -> Option<EndpointAddr> {
    let tcp = n.bus.iter().find_map(|u| {
        let a: SocketAddr = u.strip_prefix("tcp://")?.parse().ok()?;
        (!a.ip().is_unspecified() && a.port() != 0).then_some(EndpointAddr::Tcp(a))
    });
    tcp.or_else(|| {
        (n.host.hostname == my_host)
            .then(|| {
                n.bus.iter().find_map(|u| {
                    u.strip_prefix("unix://")
                        .map(|p| EndpointAddr::Unix(p.into()))
                })
            })
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use busway_discovery::Host;
    use std::sync::Arc;

    fn node(ns: &str, name: &str, labels: &[(&str, &str)], bus: &[&str], host: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            namespace: ns.into(),
            version: "0.1.0".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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

    fn view(nodes: Vec<NodeRecord>) -> View {
        View {
            nodes: Arc::new(
                nodes
                    .into_iter()
                    .map(|n| (format!("/b/nodes/{}/{}", n.namespace, n.name), n))
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
        }
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
        let sel = [("app".to_string(), "chat".to_string())].into();
        let (eps, unreachable) = endpoints(&v, &me(), &sel, "chat");
        assert_eq!(
            eps,
            vec![EndpointAddr::Tcp("10.0.0.1:7100".parse().unwrap())]
        );
        assert!(unreachable.is_empty());
        let none = [("zone".to_string(), "y".to_string())].into();
        assert!(endpoints(&v, &me(), &none, "chat").0.is_empty());
    }

    #[test]
    fn one_usable_url_per_node_and_other_namespaces_left_out() {
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
        let sel = [("app".to_string(), "chat".to_string())].into();
        let (eps, unreachable) = endpoints(&v, &me(), &sel, "chat");
        assert_eq!(
            eps,
            vec![
                EndpointAddr::Tcp("10.0.0.1:7100".parse().unwrap()),
                EndpointAddr::Unix("/run/b.sock".into()),
            ]
        );
        assert_eq!(
            unreachable,
            vec![
                ("/b/nodes/edge/e".to_string(), Unreachable::OtherNamespace),
                ("/b/nodes/prod/c".to_string(), Unreachable::NoUsableUrl),
                ("/b/nodes/prod/d".to_string(), Unreachable::NoUsableUrl),
            ]
        );
    }
}

//! Relays (CONTRACT section 6): a node with `[relay] enabled = true` accepts sessions for
//! services it does not serve, and for nodes other than itself, and carries them on over the
//! bus to a node that serves them.
//!
//! A relayed session is two bus streams joined by the ordinary [`pump`]: bytes read from one
//! are released only once the other took them, within its credit, so the relay holds at most a
//! stream window per direction and flow control runs end to end (docs/DISCOVERY.md,
//! "Relays"). Half-close and server-speaks-first pass through because the pump passes them.
//!
//! Where a session goes next:
//! - it names a node (`Open.to`, set by an ingress whose `label:` target found it): that node,
//!   reached as [`route::reach`] says, through nodes not already on the session's path;
//! - it names none: a service of this node's own with `peers` under the same name (a relay
//!   configured without discovery), else the first node in view serving the service.
//!
//! Every node refuses a session whose path holds itself or more than [`MAX_PATH`] nodes
//! (reset `loop`), so no configuration makes a session circle.

use std::sync::Arc;
use std::time::Duration;

use busway_config::Targets;
use busway_net::EndpointAddr;
use busway_proto::{clip, Open, OpenParams, ResetCode, MAX_PATH};

use crate::bus::{BusStream, PoolState};
use crate::discovery::route;
use crate::mirror::Mirrors;
use crate::node::Node;
use crate::pump::{pump, Abort, End};
use crate::sessions::new_id;

/// How long a relay waits for a transport to the next hop when no service of its own says
/// (`connect_timeout`'s default).
const NEXT_HOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a relayed session goes next.
struct Hop {
    addr: EndpointAddr,
    /// The node it is for (`namespace/name`), or empty.
    to: String,
    timeout: Duration,
}

/// Refuses `open` with reset `loop` when this node is on its path already or the path is
/// longer than [`MAX_PATH`]; true when it did.
pub(crate) fn refuse_loop(node: &Node, open: &Open, stream: &BusStream) -> bool {
    let Some(why) = loop_reason(&node.hop, &open.path) else {
        return false;
    };
    let path: Vec<&str> = open
        .path
        .iter()
        .take(MAX_PATH + 1)
        .map(|p| clip(p, 64))
        .collect();
    tracing::warn!(service = %clip(&open.service, 128), path = %path.join(" > "), peer = %stream.transport().peer, "session refused: {why}");
    stream.reset(ResetCode::Loop, &why);
    if let Some(svc) = node.service(&open.service) {
        svc.metrics.finished("refused");
    }
    true
}

/// Why the process entered in paths as `me` (`namespace/name#INSTANCE`) must refuse a
/// session that passed `path`, if it must.
fn loop_reason(me: &str, path: &[String]) -> Option<String> {
    if path.len() > MAX_PATH {
        Some(format!(
            "the session passed {} nodes, more than {MAX_PATH}",
            path.len()
        ))
    } else if path.iter().any(|p| p == me) {
        Some(format!("{} is on the session's path already", node_of(me)))
    } else {
        None
    }
}

/// The `namespace/name` of a path entry.
pub(crate) fn node_of(entry: &str) -> &str {
    entry.split_once('#').map_or(entry, |(n, _)| n)
}

/// Whether this node carries `open` on rather than serving it: it relays, and the session is
/// for another node, or names none and this node has no backends for its service.
pub(crate) fn carries_on(node: &Node, open: &Open) -> bool {
    let relays = node
        .config
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .relay
        .enabled;
    if !relays {
        return false;
    }
    if !open.to.is_empty() {
        return *open.to != *node.key;
    }
    node.service(&open.service)
        .is_none_or(|s| !matches!(s.config().targets, Targets::Backends(_)))
}

/// Carries the session of `inbound` on to its next hop, and pumps until it ends.
pub(crate) async fn carry_on(node: Arc<Node>, open: Open, inbound: BusStream) {
    let service = clip(&open.service, 128).to_string();
    let t = inbound.transport();
    if !crate::trust::may_relay(&node, t, &service) {
        let trust = t.trust().map_or("none", |t| t.label());
        tracing::warn!(%service, peer = %t.peer, trust, "session refused: this transport may not be relayed");
        inbound.reset(
            ResetCode::Forbidden,
            &format!("trust level {trust} may not be relayed"),
        );
        return;
    }
    let hop = match next_hop(&node, &open, &service) {
        Ok(h) => h,
        Err(why) => {
            tracing::warn!(%service, to = %clip(&open.to, 128), "relay: no route: {why}");
            inbound.reset(ResetCode::Unreachable, &why);
            return;
        }
    };
    let mut path = open.path;
    path.push(node.hop.to_string());
    let params = OpenParams {
        service: service.clone(),
        session_id: open.session_id.clone(),
        client: open.client.clone(),
        mode: open.mode.clone(),
        labels: open.labels.into_iter().collect(),
        path,
        to: hop.to,
    };
    let id: Arc<str> = if !open.session_id.is_empty() && open.session_id.len() <= 64 {
        open.session_id.as_str().into()
    } else {
        new_id()
    };
    let client = format!("{} via {}", clip(&open.client, 128), clip(&t.node(), 128));
    let metrics = node.metrics.service(&service);
    let ticket = node.sessions.register(
        id,
        service.as_str().into(),
        client,
        mode_label(&open.mode),
        metrics.clone(),
    );
    let entry = &ticket.entry;
    entry.set_targets(vec![hop.addr.to_string().into()]);
    let deadline = tokio::time::Instant::now() + hop.timeout;
    let out = match node.pools.get(&hop.addr).open(params, deadline).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%service, next = %hop.addr, error = %e, "relay: cannot open a stream to the next hop");
            inbound.reset(ResetCode::Unreachable, &e);
            metrics.finished("refused");
            return;
        }
    };
    entry.set_state("open");
    let r = pump(
        End::Bus(&inbound),
        End::Bus(&out),
        entry,
        Duration::ZERO,
        &Mirrors::default(),
    )
    .await;
    // A reset from further on goes back with its own code (a `loop` found two hops on is a
    // `loop` at the ingress), not as this relay's `cancel`.
    if let Err(Abort::Reset(code, reason)) = &r {
        inbound.reset(*code, reason);
    }
    let outcome = match r {
        Ok(()) => "ok",
        Err(a) => {
            tracing::debug!(session = %entry.id, %service, reason = %a, "relayed session ended");
            a.outcome()
        }
    };
    metrics.finished(outcome);
}

/// Where `open` goes from here (see the module documentation).
fn next_hop(node: &Node, open: &Open, service: &str) -> Result<Hop, String> {
    let discovered = node.discovery().map(|d| (d.view(), d.current_me()));
    if !open.to.is_empty() {
        let to = clip(&open.to, 128);
        let Some((view, me)) = discovered else {
            return Err(format!("this relay has no [discovery] to find {to} by"));
        };
        let n = route::find(&view, &open.to)
            .ok_or_else(|| format!("{to} is not in this relay's view"))?;
        if !n.services.iter().any(|s| s == service) {
            return Err(format!("{to} does not serve {service}"));
        }
        let addr =
            route::reach(&view, &me, n, &open.path).map_err(|u| format!("{to} is {}", u.says()))?;
        return Ok(Hop {
            addr,
            to: open.to.clone(),
            timeout: NEXT_HOP_TIMEOUT,
        });
    }
    if let Some(svc) = node
        .service(service)
        .filter(|s| matches!(s.config().targets, Targets::Peers(_)))
    {
        let cfg = svc.config();
        let targets = svc.targets();
        let passed = |e: &busway_net::Endpoint| {
            e.to.as_ref()
                .is_some_and(|to| open.path.iter().any(|p| node_of(p) == &**to))
        };
        let state = |e: &busway_net::Endpoint| node.pools.state(&e.addr);
        let ep = targets
            .pick(cfg.balance, &[], |e| {
                !passed(e) && state(e) == PoolState::Up
            })
            .or_else(|| {
                targets.pick(cfg.balance, &[], |e| {
                    !passed(e) && state(e) == PoolState::Pending
                })
            })
            .ok_or_else(|| format!("no peer of service {service} can take the session"))?;
        return Ok(Hop {
            addr: ep.addr.clone(),
            to: ep.to.as_deref().unwrap_or_default().to_string(),
            timeout: cfg.connect_timeout,
        });
    }
    let Some((view, me)) = discovered else {
        return Err(format!(
            "no service {service} here and no [discovery] to find one"
        ));
    };
    let (addr, to) = route::any_serving(&view, &me, service, &open.path)
        .ok_or_else(|| format!("no node in view serves {service}"))?;
    Ok(Hop {
        addr,
        to: to.to_string(),
        timeout: NEXT_HOP_TIMEOUT,
    })
}

/// The session's mode as `/v1/sessions` lists it: one the contract names, else `one-to-one`
/// (a relay itself is always one stream to one stream).
fn mode_label(mode: &str) -> &'static str {
    ["half-duplex", "full-duplex"]
        .into_iter()
        .find(|m| *m == mode)
        .unwrap_or("one-to-one")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_holding_this_node_or_longer_than_eight_is_a_loop() {
        let path =
            |n: usize| -> Vec<String> { (0..n).map(|i| format!("ns/n{i}#0000000{i}")).collect() };
        let me = "ns/me#12345678";
        assert_eq!(loop_reason(me, &path(MAX_PATH)), None);
        assert_eq!(loop_reason(me, &[]), None);
        let long = loop_reason(me, &path(MAX_PATH + 1)).expect("too long");
        assert!(long.contains("passed 9 nodes"), "{long}");
        let mut again = path(3);
        again.push(me.into());
        let circle = loop_reason(me, &again).expect("on the path");
        assert!(
            circle.contains("ns/me is on the session's path"),
            "{circle}"
        );
        // Another namespace's node of the same name is another node, and so is another
        // process of the same name (its instance differs).
        assert_eq!(loop_reason("other/n1#00000001", &path(3)), None);
        assert_eq!(loop_reason("ns/n1#ffffffff", &path(3)), None);
        assert_eq!(node_of("ns/n1#00000001"), "ns/n1");
        assert_eq!(node_of("ns/n1"), "ns/n1");
    }

    #[test]
    fn modes_are_listed_as_the_contract_names_them() {
        assert_eq!(mode_label("half-duplex"), "half-duplex");
        assert_eq!(mode_label("full-duplex"), "full-duplex");
        assert_eq!(mode_label("one-to-one"), "one-to-one");
        assert_eq!(mode_label("tcp"), "one-to-one");
    }
}

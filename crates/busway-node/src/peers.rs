//! Which transport pools a node keeps: one per peer endpoint some service can use now.
//!
//! Endpoints come and go with DNS answers and reloads. A pool whose endpoint no service lists
//! any more is stopped (its transports drain, its dial loops end), so an address that vanished
//! from an answer is not redialled forever.

use std::future::{poll_fn, Future};
use std::sync::{Arc, Weak};
use std::task::Poll;

use busway_config::Targets;
use busway_net::EndpointAddr;

use crate::node::Node;

impl Node {
    /// Every peer endpoint of every service, as the target sets know them now.
    fn peer_endpoints(&self) -> Vec<EndpointAddr> {
        let mut used = Vec::new();
        for svc in self.services() {
            if matches!(svc.config().targets, Targets::Peers(_)) {
                used.extend(
                    svc.targets()
                        .endpoints()
                        .into_iter()
                        .map(|e| e.addr.clone()),
                );
            }
        }
        if let Some(d) = self.discovery() {
            used.extend(d.relay_endpoints());
        }
        if let Some(c) = self.cluster() {
            used.extend(c.lan_endpoints());
        }
        used
    }

    /// Stops the pools of endpoints no service uses any more.
    pub(crate) fn prune_pools(&self) {
        let used = self.peer_endpoints();
        self.pools.retain(|ep| used.contains(ep));
    }
}

/// Prunes the node's pools whenever a service's peer set changes (a DNS answer) or the node is
/// reloaded; ends with the node.
pub(crate) async fn prune_on_changes(node: Weak<Node>) {
    loop {
        let Some(n) = node.upgrade() else { return };
        let mut watched: Vec<_> = n
            .services()
            .iter()
            .filter(|s| matches!(s.config().targets, Targets::Peers(_)))
            .map(|s| s.targets().changes())
            .collect();
        watched.push(n.reloads());
        drop(n);
        // Whichever changes first; a closed channel (a set replaced by a reload) counts too.
        let mut waits: Vec<_> = watched
            .into_iter()
            .map(|mut rx| {
                Box::pin(async move {
                    let _ = rx.changed().await;
                })
            })
            .collect();
        poll_fn(|cx| {
            if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        match node.upgrade() {
            Some(n) => n.prune_pools(),
            None => return,
        }
    }
}

/// Keeps the pruning task alive as long as the node.
pub(crate) fn spawn(node: &Arc<Node>) {
    tokio::spawn(prune_on_changes(Arc::downgrade(node)));
}

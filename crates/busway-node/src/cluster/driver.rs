//! The loop around the state machine: datagrams and timers in, address changes, ARP and
//! datagrams out, in the order the machine asked for them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_cluster::{Notice, Output, ADDRESS_LIFETIME};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::address::Address;
use super::{persist, NodeCluster};

/// Largest datagram read: the protocol's are at most 1400 bytes; a larger one is cut short
/// and then rejected as malformed.
const RECV_BUF: usize = 2048;

pub(super) struct Driver {
    pub cluster: Arc<NodeCluster>,
    pub sock: UdpSocket,
    pub group: SocketAddr,
    pub address: Address,
    pub state_dir: Option<PathBuf>,
}

impl Driver {
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let deadline = self.cluster.lock().poll_timeout();
            // No timer asked for: wake at least once a second anyway (a cheap bound, never
            // reached while the machine runs its advert timer).
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.cluster.lock().handle_datagram(Instant::now(), from, &buf[..n]);
                    }
                    Err(e) => {
                        // ICMP errors of earlier sends and the like: not fatal to the socket.
                        tracing::debug!(error = %e, "cluster: receive failed");
                    }
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    self.cluster.lock().handle_timeout(Instant::now());
                }
                _ = stop.changed() => {
                    self.cluster.lock().leave(Instant::now());
                    self.carry_out().await;
                    return;
                }
            }
            self.carry_out().await;
        }
    }

    /// Takes every output and does it.
    pub(super) async fn carry_out(&mut self) {
        loop {
            let (out, snapshot) = {
                let mut c = self.cluster.lock();
                let Some(out) = c.poll_output() else { return };
                let snapshot = matches!(out, Output::HistoryChanged).then(|| c.snapshot());
                (out, snapshot)
            };
            match out {
                Output::AddAddress => self.address.add(ADDRESS_LIFETIME),
                Output::RefreshAddress => self.address.refresh(ADDRESS_LIFETIME),
                Output::RemoveAddress => self.address.remove(),
                Output::SendGratuitousArp => self.address.arp(),
                Output::Multicast(d) => self.send(self.group, &d).await,
                Output::Send { to, datagram } => self.send(to, &datagram).await,
                Output::HistoryChanged => {
                    if let (Some(dir), Some(s)) = (&self.state_dir, snapshot) {
                        persist::save(dir, &s);
                    }
                }
                Output::Rejected {
                    reason,
                    from,
                    detail,
                    suppressed,
                } => tracing::warn!(
                    reason = reason.label(),
                    %from,
                    suppressed,
                    "cluster: datagram ignored: {detail}"
                ),
                Output::Notice(n) => log_notice(&n),
            }
        }
    }

    async fn send(&self, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.sock.send_to(datagram, to).await {
            // A link that is down: the machine's timers carry on, and the next advert retries.
            tracing::debug!(%to, error = %e, "cluster: send failed");
        }
    }
}

fn log_notice(n: &Notice) {
    match n {
        Notice::Founded { era } => {
            tracing::info!(era, "cluster: no cluster answered; founded an era")
        }
        Notice::Owner { reason } => {
            tracing::info!(reason = ?reason, "cluster: this node owns the service address")
        }
        Notice::Yielded { to } => tracing::info!(to = %to, "cluster: yielded the service address"),
        Notice::MemberUp { node, incarnation } => {
            tracing::info!(member = %node, incarnation, "cluster: member up")
        }
        Notice::MemberDown { node, left } => {
            tracing::info!(member = %node, left, "cluster: member down")
        }
        Notice::Conflict { other } => {
            tracing::warn!(other = %other, "cluster: another owner heard; it ranks lower and will yield")
        }
    }
}

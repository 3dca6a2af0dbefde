//! One browse of a service type: the answers the mDNS library resolved, turned into bus peers.
//!
//! Anything on the LAN can answer, so every resolved instance is checked before it becomes a
//! target: its instance name must be a node name busway accepts (it is how this node leaves
//! itself out), its port non-zero, and it must have an IPv4 address a peer can be dialled at.
//! An answer that fails is ignored, and logged at most once a second per reason with the count
//! left out. The set is capped, so a flood of made-up instances costs a bounded map.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use busway_net::EndpointAddr;
use mdns_sd::{ResolvedService, ServiceEvent};

use crate::metrics::HandshakeLog;

/// Instances kept per service type; answers for more are ignored (and logged).
pub(super) const MAX_INSTANCES: usize = 256;
/// Node names are at most this long (the cluster's adverts carry them).
const MAX_NAME: usize = 64;

/// The instances of one service type resolved now: instance name to its bus endpoint.
pub(super) type Instances = BTreeMap<String, EndpointAddr>;

/// Why an answer was ignored: a fixed word, the log's rate-limit key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ignored {
    /// The full name is not `INSTANCE.TYPE`, or the instance is not a node name.
    Name,
    /// Port 0: nothing can be dialled there.
    Port,
    /// No IPv4 address that is a host's own (unspecified, multicast or broadcast only).
    Address,
    /// [`MAX_INSTANCES`] are known already.
    Full,
}

impl Ignored {
    fn label(self) -> &'static str {
        match self {
            Ignored::Name => "name",
            Ignored::Port => "port",
            Ignored::Address => "address",
            Ignored::Full => "too many instances",
        }
    }
}

/// What an event does to the instances of `ty`: whether they changed.
pub(super) fn apply(
    ty: &str,
    me: &str,
    instances: &mut Instances,
    event: ServiceEvent,
    log: &HandshakeLog,
) -> bool {
    match event {
        ServiceEvent::ServiceResolved(r) => match resolved(ty, &r) {
            Ok((name, _)) if name == me => false,
            Ok((name, ep)) => {
                if instances.get(&name) == Some(&ep) {
                    return false;
                }
                if !instances.contains_key(&name) && instances.len() >= MAX_INSTANCES {
                    ignored(ty, &r.fullname, Ignored::Full, log);
                    return false;
                }
                tracing::info!(service_type = %shown(ty), instance = %name, endpoint = %ep, "mdns: bus peer found");
                instances.insert(name, ep);
                true
            }
            Err(why) => ignored(ty, &r.fullname, why, log),
        },
        ServiceEvent::ServiceRemoved(_, fullname) => {
            let Some(name) = instance_name(ty, &fullname) else {
                return false;
            };
            let gone = instances.remove(&name).is_some();
            if gone {
                tracing::info!(service_type = %shown(ty), instance = %name, "mdns: bus peer gone");
            }
            gone
        }
        _ => false,
    }
}

/// Logs an ignored answer, at most once a second per reason; never a change.
fn ignored(ty: &str, fullname: &str, why: Ignored, log: &HandshakeLog) -> bool {
    if let Some(suppressed) = log.admit(why.label()) {
        // Debug-quoted: the name is anyone's text, control characters included.
        let name = busway_proto::clip(fullname, 128);
        tracing::warn!(service_type = %shown(ty), ?name, reason = why.label(), suppressed, "mdns: answer ignored");
    }
    false
}

/// A service type as the configuration writes it (without the root dot).
fn shown(ty: &str) -> &str {
    ty.strip_suffix('.').unwrap_or(ty)
}

/// The instance's node name and the endpoint to dial it at. Of several IPv4 addresses the
/// lowest is taken, so that every answer for the same records gives the same endpoint.
pub(super) fn resolved(ty: &str, r: &ResolvedService) -> Result<(String, EndpointAddr), Ignored> {
    let name = instance_name(ty, &r.fullname).ok_or(Ignored::Name)?;
    if r.port == 0 {
        return Err(Ignored::Port);
    }
    let ip = r
        .get_addresses_v4()
        .into_iter()
        .filter(dialable)
        .min()
        .ok_or(Ignored::Address)?;
    Ok((name, EndpointAddr::Tcp(SocketAddr::from((ip, r.port)))))
}

fn dialable(ip: &Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
}

/// `INSTANCE` of `INSTANCE.TYPE` (the type compared without regard to case, as DNS does),
/// with the library's escapes of `.` and `\` undone, when it is a node name: 1 to 64 of
/// `A-Z a-z 0-9 . _ -`.
pub(super) fn instance_name(ty: &str, fullname: &str) -> Option<String> {
    let cut = fullname.len().checked_sub(ty.len() + 1)?;
    let (instance, rest) = (fullname.get(..cut)?, fullname.get(cut..)?);
    if !rest.starts_with('.') || !rest[1..].eq_ignore_ascii_case(ty) {
        return None;
    }
    let name = instance.replace("\\.", ".");
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (!name.is_empty() && name.len() <= MAX_NAME && name.chars().all(ok)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TY: &str = "_busway._tcp.local.";

    #[test]
    fn instance_names_are_node_names() {
        let name = |f: &str| instance_name(TY, f);
        assert_eq!(name("m1._busway._tcp.local.").as_deref(), Some("m1"));
        assert_eq!(name("M1._BUSWAY._tcp.LOCAL.").as_deref(), Some("M1"));
        assert_eq!(
            name("edge\\.eu._busway._tcp.local.").as_deref(),
            Some("edge.eu")
        );
        for bad in [
            "._busway._tcp.local.",
            "_busway._tcp.local.",
            "m1._other._tcp.local.",
            "m 1._busway._tcp.local.",
            "m\\\\1._busway._tcp.local.",
            "m\u{e9}._busway._tcp.local.",
            "",
        ] {
            assert_eq!(name(bad), None, "{bad:?}");
        }
        let long = format!("{}._busway._tcp.local.", "n".repeat(65));
        assert_eq!(name(&long), None);
    }

    /// What the library hands over when it resolves `name` at `ips`:`port`.
    fn answer(name: &str, ips: &str, port: u16) -> ServiceEvent {
        let no_txt: &[(&str, &str)] = &[];
        let info = mdns_sd::ServiceInfo::new(TY, name, "h.local.", ips, port, no_txt).unwrap();
        ServiceEvent::ServiceResolved(Box::new(info.as_resolved_service()))
    }

    fn tcp(ip: [u8; 4], port: u16) -> EndpointAddr {
        EndpointAddr::Tcp(SocketAddr::from((ip, port)))
    }

    #[test]
    fn answers_become_peers_and_hostile_ones_are_ignored() {
        let log = HandshakeLog::default();
        let mut set = Instances::new();
        let mut put = |e| apply(TY, "me", &mut set, e, &log);
        assert!(put(answer("m1", "198.18.0.21,198.18.0.11", 7100)));
        assert!(
            !put(answer("m1", "198.18.0.11,198.18.0.21", 7100)),
            "the same"
        );
        assert!(!put(answer("me", "198.18.0.10", 7100)), "itself");
        assert!(!put(answer("m2", "198.18.0.12", 0)), "port 0");
        assert!(!put(answer("m 2", "198.18.0.12", 7100)), "not a node name");
        assert!(
            !put(answer("m3", "224.0.0.251,0.0.0.0", 7100)),
            "no host address"
        );
        assert!(!put(answer("m4", "fd00::4", 7100)), "IPv6 only");
        assert!(put(answer("m1", "198.18.0.31", 7200)), "moved");
        let removed = |n: &str| ServiceEvent::ServiceRemoved(TY.into(), format!("{n}.{TY}"));
        assert!(!put(removed("m9")), "never found");
        assert!(!put(ServiceEvent::SearchStarted(TY.into())));
        assert_eq!(set.len(), 1);
        assert_eq!(set["m1"], tcp([198, 18, 0, 31], 7200));
        assert!(apply(TY, "me", &mut set, removed("m1"), &log));
        assert!(set.is_empty());
    }

    #[test]
    fn the_set_is_capped() {
        let log = HandshakeLog::default();
        let mut set = Instances::new();
        for i in 0..MAX_INSTANCES {
            assert!(apply(
                TY,
                "me",
                &mut set,
                answer(&format!("n{i}"), "198.18.1.1", 7100),
                &log
            ));
        }
        assert!(!apply(
            TY,
            "me",
            &mut set,
            answer("one-more", "198.18.1.1", 7100),
            &log
        ));
        assert_eq!(set.len(), MAX_INSTANCES);
        // A known instance may still move.
        assert!(apply(
            TY,
            "me",
            &mut set,
            answer("n0", "198.18.1.2", 7100),
            &log
        ));
    }
}

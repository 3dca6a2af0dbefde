//! What `GET /v1/cluster` shows (section 7), and the members LAN balancing chooses from.

use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

use crate::balance::lan_balance;
use crate::cluster::Cluster;
use crate::history::History;
use crate::wire::Role;

/// `{era, owner, self, members, history}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    pub era: u32,
    pub owner: Option<String>,
    #[serde(rename = "self")]
    pub self_name: String,
    pub members: Vec<MemberView>,
    pub history: Vec<EventView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub name: String,
    /// Its bus URL.
    pub address: String,
    pub incarnation: u32,
    /// `owner` or `member`.
    pub role: &'static str,
    /// Since its last advert; 0 for this node.
    pub last_seen_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventView {
    pub era: u32,
    pub seq: u32,
    /// `join`, `leave` or `takeover`.
    pub event: &'static str,
    pub node: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// A live member LAN balancing may pick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub name: String,
    pub bus_address: String,
    /// The pick is this node: serve the session here.
    pub is_self: bool,
}

impl Cluster {
    pub fn view(&self, now: Instant) -> ClusterView {
        let owner = self.owner().map(str::to_owned);
        let role = |name: &str| {
            if owner.as_deref() == Some(name) {
                "owner"
            } else {
                "member"
            }
        };
        let me = &self.config().node;
        let mut members = vec![MemberView {
            name: me.clone(),
            address: self.config().bus_address.clone(),
            incarnation: self.config().incarnation,
            role: role(me),
            last_seen_ms: 0,
        }];
        for m in self.member_list() {
            members.push(MemberView {
                name: m.name.clone(),
                address: m.advert.bus.clone(),
                incarnation: m.incarnation,
                role: role(&m.name),
                last_seen_ms: now.saturating_duration_since(m.last_seen).as_millis() as u64,
            });
        }
        ClusterView {
            era: self.era(),
            owner: owner.clone(),
            self_name: me.clone(),
            members,
            history: history_view(self.history()),
        }
    }

    /// The member that serves `client` with `lan_balance`: among this node and the members
    /// taking part (not those still joining), by [`lan_balance`].
    pub fn pick(&self, client: SocketAddr) -> Option<Pick> {
        let me = self.config().node.as_str();
        let others = self
            .member_list()
            .filter(|m| matches!(m.advert.role, Role::Member | Role::Owner));
        let names: Vec<&str> = std::iter::once(me)
            .chain(others.map(|m| m.name.as_str()))
            .collect();
        let name = lan_balance(names, client)?;
        if name == me {
            return Some(Pick {
                name: me.to_owned(),
                bus_address: self.config().bus_address.clone(),
                is_self: true,
            });
        }
        self.member_list().find(|m| m.name == name).map(|m| Pick {
            name: m.name.clone(),
            bus_address: m.advert.bus.clone(),
            is_self: false,
        })
    }
}

/// Every event with its era's `seq`, dated in RFC 3339.
pub fn history_view(h: &History) -> Vec<EventView> {
    h.numbered()
        .into_iter()
        .map(|(seq, e)| EventView {
            era: e.era,
            seq,
            event: e.kind.label(),
            node: e.node.clone(),
            at: rfc3339(e.at_ms),
        })
        .collect()
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by the era-of-400-years
/// method (every 400 years have the same 146,097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }
}

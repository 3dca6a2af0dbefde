//! What one member is and how fast it speaks; the takeover bound follows from these.

use std::time::Duration;

use crate::wire::{MAX_BUS_ADDRESS, MAX_NAME};

/// The cluster's clocks. Defaults are the contract's (`advert_interval = "200ms"`,
/// `dead_after = 3`) and give a takeover bound of 800 ms (docs/CLUSTER.md, "Timing").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub advert_interval: Duration,
    /// Adverts missed before a member is suspected.
    pub dead_after: u32,
    /// Between probes of a suspected member, and the wait after the last one.
    pub probe_interval: Duration,
    /// Probes sent before a silent member is declared dead.
    pub probe_attempts: u32,
}

/// Shortest advert interval accepted, ours or a peer's.
pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
/// Longest advert interval accepted, ours or a peer's.
pub const MAX_ADVERT_INTERVAL: Duration = Duration::from_secs(10);

impl Default for Timing {
    fn default() -> Timing {
        Timing::new(Duration::from_millis(200), 3)
    }
}

impl Timing {
    /// The timing for an advert interval and `dead_after`: probes a quarter interval apart,
    /// three of them, so a confirmation costs 3/4 of an interval whatever the interval.
    pub fn new(advert_interval: Duration, dead_after: u32) -> Timing {
        Timing {
            advert_interval,
            dead_after,
            probe_interval: advert_interval / 4,
            probe_attempts: 3,
        }
    }

    /// Slack after the last expected advert before suspicion starts: a quarter interval, so a
    /// sender whose timer fires a little late is not probed for it.
    pub fn grace(interval: Duration) -> Duration {
        interval / 4
    }

    /// Silence after which a member sending every `interval` is suspected.
    pub fn suspect_after(&self, interval: Duration) -> Duration {
        interval * self.dead_after + Timing::grace(interval)
    }

    /// Time from the first probe to declaring the member dead.
    pub fn probe_window(&self) -> Duration {
        self.probe_interval * self.probe_attempts
    }

    /// Longest time from an owner's last advert to a member's takeover, if the owner went
    /// silent at once: suspicion, then the probes. What the driver adds (a netlink call, the
    /// first gratuitous ARP) comes on top.
    pub fn takeover_bound(&self) -> Duration {
        self.suspect_after(self.advert_interval) + self.probe_window()
    }

    /// How long a booting node listens for a cluster before founding an era: long enough to
    /// hear `dead_after` adverts of a running owner (which also answers the boot hello at once).
    pub fn discovery(&self) -> Duration {
        self.suspect_after(self.advert_interval)
    }
}

/// One member's identity and settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Tells clusters sharing a group apart; every member of one cluster has the same.
    pub cluster_id: String,
    /// This node's name: unique in the cluster, at most 64 bytes.
    pub node: String,
    /// 1 + this node's earlier starts with the same `state_dir`.
    pub incarnation: u32,
    /// Higher wins the election.
    pub priority: u32,
    /// The cluster secret that signs every datagram.
    pub secret: Vec<u8>,
    /// This node's bus URL, shown to others and used by LAN balancing.
    pub bus_address: String,
    pub timing: Timing,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cluster_id", &self.cluster_id)
            .field("node", &self.node)
            .field("incarnation", &self.incarnation)
            .field("priority", &self.priority)
            .field("secret", &"<redacted>")
            .field("bus_address", &self.bus_address)
            .field("timing", &self.timing)
            .finish()
    }
}

/// A setting the state machine cannot run with; names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cluster {0} must be 1 to 64 bytes without control characters")]
    Name(&'static str),
    #[error("cluster bus address must be at most {MAX_BUS_ADDRESS} bytes")]
    BusAddress,
    #[error("cluster advert_interval must be between 10ms and 10s")]
    AdvertInterval,
    #[error("cluster dead_after must be 1 to 100")]
    DeadAfter,
    #[error("cluster probes must be 1 to 10, spaced 1ms to one advert interval")]
    Probes,
    #[error("cluster incarnation must be at least 1")]
    Incarnation,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control)
}

impl Config {
    /// A member with default timing and priority 100.
    pub fn new(cluster_id: &str, node: &str, secret: &[u8]) -> Config {
        Config {
            cluster_id: cluster_id.to_owned(),
            node: node.to_owned(),
            incarnation: 1,
            priority: 100,
            secret: secret.to_vec(),
            bus_address: String::new(),
            timing: Timing::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !name_ok(&self.cluster_id) {
            return Err(ConfigError::Name("id"));
        }
        if !name_ok(&self.node) {
            return Err(ConfigError::Name("node name"));
        }
        if self.bus_address.len() > MAX_BUS_ADDRESS
            || self.bus_address.chars().any(char::is_control)
        {
            return Err(ConfigError::BusAddress);
        }
        let t = &self.timing;
        if !(MIN_ADVERT_INTERVAL..=MAX_ADVERT_INTERVAL).contains(&t.advert_interval) {
            return Err(ConfigError::AdvertInterval);
        }
        if !(1..=100).contains(&t.dead_after) {
            return Err(ConfigError::DeadAfter);
        }
        if !(1..=10).contains(&t.probe_attempts)
            || t.probe_interval < Duration::from_millis(1)
            || t.probe_interval > t.advert_interval
        {
            return Err(ConfigError::Probes);
        }
        if self.incarnation == 0 {
            return Err(ConfigError::Incarnation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bound_is_well_under_a_second() {
        let t = Timing::default();
        assert_eq!(
            t.suspect_after(t.advert_interval),
            Duration::from_millis(650)
        );
        assert_eq!(t.probe_window(), Duration::from_millis(150));
        assert_eq!(t.takeover_bound(), Duration::from_millis(800));
        let fast = Timing::new(Duration::from_millis(50), 3);
        assert_eq!(fast.takeover_bound(), Duration::from_millis(200));
    }

    #[test]
    fn validation_names_the_setting() {
        let ok = Config::new("lan", "a", b"s");
        assert_eq!(ok.validate(), Ok(()));
        let mut c = ok.clone();
        c.node = "x".repeat(65);
        assert_eq!(c.validate(), Err(ConfigError::Name("node name")));
        let mut c = ok.clone();
        c.timing = Timing::new(Duration::from_millis(5), 3);
        assert_eq!(c.validate(), Err(ConfigError::AdvertInterval));
        let mut c = ok.clone();
        c.timing.dead_after = 0;
        assert_eq!(c.validate(), Err(ConfigError::DeadAfter));
        let mut c = ok;
        c.incarnation = 0;
        assert_eq!(c.validate(), Err(ConfigError::Incarnation));
    }

    #[test]
    fn the_secret_stays_out_of_debug() {
        let c = Config::new("lan", "a", b"hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

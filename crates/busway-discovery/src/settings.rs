//! `[discovery]`: where etcd is, where the records live, how long a lease lasts; and the one
//! error [`crate::Discovery::start`] can return.

use std::time::Duration;

use crate::parse::Rejected;

/// What the node's `[discovery]` section says (CONTRACT 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `http://HOST:PORT` of members of one etcd cluster, tried in turn.
    pub endpoints: Vec<String>,
    /// The key prefix, e.g. `/busway`; records live under `PREFIX/nodes/`.
    pub prefix: String,
    /// The lease's time to live, rounded up to whole seconds (etcd's unit). etcd may grant
    /// more than asked (its minimum is about 1.5 × its election timeout); the granted TTL is
    /// the one kept alive.
    pub lease_ttl: Duration,
}

/// Why a node cannot start with discovery. etcd not answering is not one of them: then
/// `start` succeeds and keeps trying in the background.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A live record of another process holds this node's key. The node exits 1 naming it.
    #[error("discovery: {key} is held by another live process ({holder}); stop that node, or give this one another [node] name or namespace")]
    Conflict {
        key: String,
        /// `HOSTNAME:PID` from the record found, or what could be read of it.
        holder: String,
    },
    /// Settings that can never work (no endpoint, a scheme other than `http://`, a zero TTL).
    #[error("discovery: {0}")]
    Settings(String),
    /// This node's own record breaks a rule every watcher applies (so every other node would
    /// ignore it): refused rather than published.
    #[error("discovery: this node's record would be ignored by every watcher: {0}")]
    Record(Rejected),
}

impl Settings {
    /// The lease TTL in etcd's whole seconds, after the checks of [`Settings::check`].
    pub(crate) fn ttl_secs(&self) -> i64 {
        let s = self.lease_ttl.as_secs() + u64::from(self.lease_ttl.subsec_nanos() > 0);
        i64::try_from(s).unwrap_or(i64::MAX)
    }

    pub(crate) fn check(&self) -> Result<(), StartError> {
        let bad = |m: String| Err(StartError::Settings(m));
        if self.endpoints.is_empty() {
            return bad("no etcd endpoint".to_string());
        }
        for e in &self.endpoints {
            let Some(rest) = e.strip_prefix("http://") else {
                return bad(format!(
                    "etcd endpoint {e:?}: only http://HOST:PORT is supported"
                ));
            };
            let hostport = rest.trim_end_matches('/');
            let port_ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || hostport.contains('/') {
                return bad(format!("etcd endpoint {e:?}: expected http://HOST:PORT"));
            }
        }
        if self.lease_ttl.is_zero() {
            return bad("lease_ttl must be at least 1 s".to_string());
        }
        // A day is far past any sensible TTL, and keeps the arithmetic far from overflow.
        if self.lease_ttl > Duration::from_secs(86_400) {
            return bad("lease_ttl must be at most 24 h".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(endpoints: &[&str], ttl: Duration) -> Settings {
        Settings {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            prefix: "/busway".into(),
            lease_ttl: ttl,
        }
    }

    #[test]
    fn endpoints_must_be_http_host_port() {
        let ten = Duration::from_secs(10);
        assert!(s(&["http://127.0.0.1:2379", "http://etcd-2:2379/"], ten)
            .check()
            .is_ok());
        for bad in [
            "https://127.0.0.1:2379",
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "http://:2379",
            "http://h:0",
            "http://h:2379/v3",
        ] {
            assert!(
                matches!(s(&[bad], ten).check(), Err(StartError::Settings(_))),
                "{bad}"
            );
        }
        assert!(s(&[], ten).check().is_err());
    }

    #[test]
    fn the_ttl_is_whole_seconds_rounded_up() {
        let e = ["http://127.0.0.1:2379"];
        assert_eq!(s(&e, Duration::from_millis(1500)).ttl_secs(), 2);
        assert_eq!(s(&e, Duration::from_secs(10)).ttl_secs(), 10);
        assert!(s(&e, Duration::ZERO).check().is_err());
        assert!(s(&e, Duration::from_secs(90_000)).check().is_err());
    }
}

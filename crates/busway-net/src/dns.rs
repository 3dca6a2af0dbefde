//! Name resolution with TTLs.
//!
//! A thin wrapper over hickory's resolver: it honours `[dns] servers` (else /etc/resolv.conf),
//! /etc/hosts, asks for A and AAAA records together (every record is a target), and floors TTLs
//! at `[dns] min_ttl` so a zero-TTL record cannot turn every session into a query.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busway_config::DnsConfig;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// A shared resolver; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<TokioResolver>,
    min_ttl: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("min_ttl", &self.min_ttl)
            .finish()
    }
}

/// How long a literal address stays valid: forever, in practice.
const LITERAL_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

impl Resolver {
    pub fn new(cfg: &DnsConfig) -> Resolver {
        let (config, mut opts) = if cfg.servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .unwrap_or_else(|_| (ResolverConfig::new(), ResolverOpts::default()))
        } else {
            let mut c = ResolverConfig::new();
            for s in &cfg.servers {
                c.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
                c.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
            }
            (c, ResolverOpts::default())
        };
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Always;
        opts.positive_min_ttl = Some(cfg.min_ttl);
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let mut b = TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        *b.options_mut() = opts;
        Resolver {
            inner: Arc::new(b.build()),
            min_ttl: cfg.min_ttl,
        }
    }

    /// Every address of `host` (an IP literal or a DNS name) on `port`, and until when the answer
    /// holds. An empty answer is an error: a name with no records is not a target.
    pub async fn lookup(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<SocketAddr>, Instant), String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((
                vec![SocketAddr::new(ip, port)],
                Instant::now() + LITERAL_TTL,
            ));
        }
        let name = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let answer = self
            .inner
            .lookup_ip(name.as_str())
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?;
        let mut addrs: Vec<SocketAddr> =
            answer.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("{host} has no A or AAAA records"));
        }
        let floor = Instant::now() + self.min_ttl;
        Ok((addrs, answer.valid_until().max(floor)))
    }
}

/// One SRV record's address, with the record's priority and weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    pub addr: SocketAddr,
    pub priority: u16,
    pub weight: u16,
}

impl Resolver {
    /// Every address behind the SRV records of `name`, and until when the answer holds (the
    /// earliest expiry of the SRV answer and of its targets' addresses).
    pub async fn lookup_srv(&self, name: &str) -> Result<(Vec<SrvTarget>, Instant), String> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let answer = self
            .inner
            .srv_lookup(fqdn.as_str())
            .await
            .map_err(|e| format!("{name} does not resolve: {e}"))?;
        let mut until = answer.as_lookup().valid_until();
        let mut out = Vec::new();
        for rec in answer.iter() {
            let host = rec.target().to_utf8();
            let (addrs, t) = self.lookup(host.trim_end_matches('.'), rec.port()).await?;
            until = until.min(t);
            out.extend(addrs.into_iter().map(|addr| SrvTarget {
                addr,
                priority: rec.priority(),
                weight: rec.weight(),
            }));
        }
        if out.is_empty() {
            return Err(format!("{name} has no SRV records"));
        }
        out.sort_by_key(|t| (t.priority, t.addr));
        Ok((out, until.max(Instant::now() + self.min_ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_hosts_file() {
        let r = Resolver::new(&DnsConfig {
            servers: vec![],
            min_ttl: Duration::from_secs(1),
        });
        let (a, _) = r.lookup("127.0.0.1", 80).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        let (a, _) = r.lookup("::1", 81).await.unwrap();
        assert_eq!(a, vec!["[::1]:81".parse().unwrap()]);
        // localhost comes from /etc/hosts, without any DNS server.
        let (a, until) = r.lookup("localhost", 82).await.unwrap();
        assert!(a.iter().any(|s| s.ip().is_loopback()), "{a:?}");
        assert!(until > Instant::now());
    }
}

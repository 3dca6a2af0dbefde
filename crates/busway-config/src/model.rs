//! The one typed model that both the TOML file and the Cloudbus INI format become.
//!
//! Everything downstream (the runtime, `busway check`, the admin API) reads these types only, so a
//! value that is here has already been validated: addresses are parsed, durations are durations,
//! secrets are resolved but never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A whole node: what `busway run` starts.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub admin: Option<AdminConfig>,
    pub bus: BusConfig,
    pub dns: DnsConfig,
    pub services: Vec<ServiceConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSection {
    /// Unique node name; defaults to the host name.
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Free-form metadata published in the discovery record; unlike labels, nothing selects on
    /// them, so keys and values may be any string.
    pub annotations: BTreeMap<String, String>,
    pub shutdown_grace: Duration,
    /// Where issued tokens, resumption keys and cluster history survive restarts; `None` keeps
    /// them in memory only. Kept as written: the directory may not exist where `check` runs.
    pub state_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdminConfig {
    pub listen: Address,
    pub token: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BusConfig {
    pub listen: Vec<BusListener>,
    /// The secret this node proves in handshakes: `secret`, or the first entry of a list.
    pub secret: Option<Secret>,
    /// The other entries of a `secret` list. A peer that proves any of them is accepted too,
    /// so a secret rotates without downtime (CONTRACT section 10).
    pub also_accepted: Vec<Secret>,
    /// Transports kept open to each peer (at least 1).
    pub connections_per_peer: u32,
}

/// A bus listener. `service` is set for Cloudbus segments, whose `bind` pins every session that
/// arrives on it to one service whatever name the controller gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct BusListener {
    pub address: Address,
    pub service: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct DnsConfig {
    /// `HOST:PORT` socket addresses of name servers; empty = /etc/resolv.conf.
    pub servers: Vec<std::net::SocketAddr>,
    /// Floor for re-resolution.
    pub min_ttl: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    /// Where clients connect (empty for a service that only serves sessions arriving over the bus).
    pub listen: Vec<Address>,
    /// What the service's sessions go to.
    pub targets: Targets,
    pub mode: Mode,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// Zero = never.
    pub latch_timeout: Duration,
    pub health_check: Option<HealthCheck>,
    /// Zero = never.
    pub idle_timeout: Duration,
    pub mirror: Vec<Address>,
    /// Set exactly when the backends are `grpc://` upstreams: the service is a gRPC gateway.
    pub grpc: Option<GrpcConfig>,
}

/// `[service.grpc]`: how a gateway service spreads downstreams over its upstreams and watches
/// their health (CONTRACT section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcConfig {
    pub distribute: Distribute,
    pub ready_interval: Duration,
    pub ready_timeout: Duration,
    pub live_interval: Duration,
    pub live_timeout: Duration,
    /// A downstream is active if it sent or received bytes within this.
    pub active_window: Duration,
    /// How long a new client waits for a ready upstream before it is closed.
    pub upstream_wait: Duration,
    /// Send CONNECTED and DISCONNECTED events to upstreams.
    pub lifecycle_events: bool,
}

/// Which upstream a downstream's bytes go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribute {
    /// Sticky: each downstream is assigned one upstream (by `balance`) and keeps it while healthy.
    PerClient,
    /// Every read chunk goes to the next healthy upstream, round robin.
    PerChunk,
}

impl Distribute {
    pub fn as_str(self) -> &'static str {
        match self {
            Distribute::PerClient => "per-client",
            Distribute::PerChunk => "per-chunk",
        }
    }
}

/// A service carries its sessions to bus peers (it is an ingress) or connects backends (it is an
/// egress, or a plain L4 proxy for its own listeners) — never both.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    Peers(Vec<Address>),
    Backends(Vec<Address>),
}

impl Targets {
    pub fn addresses(&self) -> &[Address] {
        match self {
            Targets::Peers(a) | Targets::Backends(a) => a,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    OneToOne,
    HalfDuplex,
    FullDuplex,
}

impl Mode {
    /// Spelled as in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::OneToOne => "one-to-one",
            Mode::HalfDuplex => "half-duplex",
            Mode::FullDuplex => "full-duplex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastSessions,
    Random,
}

impl Balance {
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastSessions => "least-sessions",
            Balance::Random => "random",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
}

/// An address of CONTRACT section 2.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// `tcp://HOST:PORT`; `host` is an IP literal (without brackets) or a DNS name.
    Tcp { host: String, port: u16 },
    /// `unix:///abs/path`
    Unix(PathBuf),
    /// `srv://_service._proto.NAME`
    Srv(String),
    /// `grpc://HOST:PORT` or, with `tls`, `grpcs://HOST:PORT`.
    Grpc { host: String, port: u16, tls: bool },
    /// `label:KEY=VALUE,...`
    Label(BTreeMap<String, String>),
    /// `mdns:_busway._tcp.local`
    Mdns(String),
}

impl fmt::Display for Address {
    /// The canonical URL form, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn host(h: &str) -> String {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        }
        match self {
            Address::Tcp { host: h, port } => write!(f, "tcp://{}:{port}", host(h)),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Srv(n) => write!(f, "srv://{n}"),
            Address::Grpc { host: h, port, tls } => {
                let scheme = if *tls { "grpcs" } else { "grpc" };
                write!(f, "{scheme}://{}:{port}", host(h))
            }
            Address::Label(m) => {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "label:{}", parts.join(","))
            }
            Address::Mdns(n) => write!(f, "mdns:{n}"),
        }
    }
}

/// A secret value (a literal, or read from the environment at load time). Its `Debug` and
/// `Display` never show the value, so it cannot leak through logs or `check` output by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The only way to read the value: call sites that do are easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

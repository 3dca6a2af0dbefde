//! The one typed model that both the TOML file and the Cloudbus INI format become.
//!
//! Everything downstream (the runtime, `busway check`, the admin API) reads these types only, so a
//! value that is here has already been validated: addresses are parsed, durations are durations,
//! secrets are resolved but never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

/// A whole node: what `busway run` starts.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub admin: Option<AdminConfig>,
    pub bus: BusConfig,
    pub dns: DnsConfig,
    /// `[discovery]` (CONTRACT section 6); `None`: no registry, and no `label:` targets.
    pub discovery: Option<DiscoveryConfig>,
    /// `[[gateway]]` (CONTRACT section 6): how nodes of other namespaces reach this one.
    pub gateways: Vec<GatewayConfig>,
    /// `[relay]` (CONTRACT section 6); disabled when absent.
    pub relay: RelayConfig,
    /// `[cluster]` (CONTRACT section 7); `None`: this node holds no shared service address.
    pub cluster: Option<ClusterConfig>,
    pub services: Vec<ServiceConfig>,
}

/// `[discovery]`: the etcd cluster this node registers in and watches.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryConfig {
    /// Endpoints of one etcd cluster, `http://HOST:PORT`, tried in turn.
    pub etcd: Vec<String>,
    /// Key prefix of every record: `PREFIX/nodes/NAMESPACE/NAME`. No trailing `/`.
    pub prefix: String,
    /// Lifetime of the node's lease; the node keeps it alive at a third of it.
    pub lease_ttl: Duration,
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
    /// `[admin.tls]`: serve the admin API over HTTPS.
    pub tls: Option<TlsConfig>,
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
    /// Spread each session over every transport to its peer, so it survives losing all of them
    /// but one (CONTRACT section 6, "Several links"). Needs `connections_per_peer` > 1 and the
    /// peer's `multilink` too; otherwise a session lives on one transport.
    pub multilink: bool,
    /// Also accept transports that prove nothing (trust level `anonymous`, CONTRACT section 10).
    pub anonymous: bool,
    /// A token issued by a peer's admin API, presented instead of a secret when dialling.
    pub token: Option<Secret>,
    /// 0-RTT resumption of transports (needs a secret or a token to mean anything).
    pub resumption: bool,
    /// How long an accepted bus connection may take to finish its handshake, TLS included.
    pub handshake_timeout: Duration,
    /// Bus connections this node accepts at once, handshaking or established.
    pub max_transports: u32,
    /// `[bus.tls]`: TLS 1.3 under the bus protocol on every bus listener and peer dial.
    pub tls: Option<TlsConfig>,
}

impl Default for BusConfig {
    /// `[bus]` when the file says nothing about it: no listener, no secret, the defaults of
    /// CONTRACT sections 3 and 10.
    fn default() -> BusConfig {
        crate::defaults::bus()
    }
}

/// `[bus.tls]` or `[admin.tls]`. Paths are kept as written and read by the node (at start and
/// on every SIGHUP), so a renewed certificate is picked up without a restart.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// This node's certificate chain, PEM. Only a node that never listens may leave it out.
    pub cert: Option<PathBuf>,
    /// Its private key, PEM; present exactly when `cert` is.
    pub key: Option<PathBuf>,
    /// The CAs that verify the other side's certificate, PEM.
    pub ca: Option<PathBuf>,
    /// What a listener asks of the connecting side.
    pub client_auth: ClientAuth,
    /// The name a dialled peer's certificate must carry; `None` = the host of its URL.
    pub server_name: Option<String>,
}

/// Whether a TLS listener asks the connecting side for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A certificate signed by `ca` is required (the default when `ca` is set).
    Required,
    /// A certificate is verified when offered; a peer without one is still accepted.
    Optional,
    /// No certificate is asked for (the default without `ca`).
    None,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
            ClientAuth::None => "none",
        }
    }
}

/// What a service lets in (CONTRACT section 10). Every count of 0 means no limit.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceLimits {
    /// Anonymous transports may open this service.
    pub anonymous: bool,
    /// Concurrent sessions of this service at this node.
    pub max_sessions: u32,
    /// Concurrent sessions per client IP address (clients of a listener, not of the bus).
    pub max_sessions_per_client: u32,
    /// New sessions per client IP address per second; the burst is the same number.
    pub new_sessions_per_client: u32,
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
    /// Who may open it and how many sessions it takes.
    pub limits: ServiceLimits,
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

/// A `[[gateway]]`: an address by which nodes outside this node's namespace reach it
/// (CONTRACT section 6, "Routing"). Published in the discovery record; dialled by others.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayConfig {
    /// `tcp://IP:PORT` or `unix://PATH`, as dialling nodes will see it.
    pub address: Address,
    /// Lower is preferred.
    pub priority: u32,
    /// Only for dialling nodes whose labels (and, for the key `namespace`, namespace) contain
    /// all of these; empty: every node.
    pub r#match: BTreeMap<String, String>,
}

/// Which relay a session to another namespace without a matching gateway tries first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayPrefer {
    /// This node's own advertised relay (`[relay] advertise`).
    #[default]
    Own,
    /// The target node's advertised relay.
    Peer,
}

impl RelayPrefer {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayPrefer::Own => "own",
            RelayPrefer::Peer => "peer",
        }
    }
}

/// `[relay]`: whether this node carries sessions on for others, and which relay reaches it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RelayConfig {
    /// Carry on sessions for services this node does not serve.
    pub enabled: bool,
    pub prefer: RelayPrefer,
    /// `advertise`: the labels of the relays that can reach this node, and optionally a
    /// preferred relay's name; published as the record's `advertise_relay`.
    pub advertise: Option<AdvertisedRelay>,
}

/// `[relay] advertise = { labels = {…}, name = "…" }`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdvertisedRelay {
    pub labels: BTreeMap<String, String>,
    pub name: Option<String>,
}

/// `[cluster]`: the LAN cluster that shares one service address (CONTRACT section 7).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// The interface the service address is added to and the group is joined on.
    pub interface: String,
    /// The shared service address. IPv4 only: it is announced by gratuitous ARP.
    pub service_ip: Ipv4Addr,
    /// Its prefix length (`/24` in `"198.18.0.100/24"`; `/32` when none is written).
    pub prefix_len: u8,
    /// The multicast group and port of the adverts.
    pub group: SocketAddrV4,
    /// Higher wins the election.
    pub priority: u32,
    pub advert_interval: Duration,
    /// Adverts missed before a member is suspected (and probed).
    pub dead_after: u32,
    /// Signs every advert (HMAC).
    pub secret: Secret,
    pub mdns: bool,
    pub lan_balance: bool,
    pub backend: ClusterBackend,
}

/// How the owner of the service address is elected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterBackend {
    /// Signed adverts on the multicast group.
    #[default]
    Multicast,
    /// A lease in `[discovery]`'s etcd.
    Etcd,
}

impl ClusterBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterBackend::Multicast => "multicast",
            ClusterBackend::Etcd => "etcd",
        }
    }
}

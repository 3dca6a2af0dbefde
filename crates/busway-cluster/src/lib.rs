//! The LAN cluster of busway, sans IO (CONTRACT.md section 7).
//!
//! Members of one cluster share a service address that exactly one of them holds. Each
//! multicasts a signed advert every `advert_interval`; a member silent for `dead_after` adverts
//! is probed directly before anyone acts, and only then does the best-ranked survivor take the
//! address. The cluster keeps a history of eras and events that late joiners receive.
//!
//! [`Cluster`] holds one member's whole protocol and none of its I/O: the driver feeds it
//! datagrams ([`Cluster::handle_datagram`]) and instants ([`Cluster::handle_timeout`] when
//! [`Cluster::poll_timeout`] says), and carries out its [`Output`]s: add or remove the address,
//! send gratuitous ARP, send datagrams, persist the history. Tests run whole clusters on a fake
//! clock and a simulated LAN. docs/CLUSTER.md has the state machine, the wire format and the
//! timing arithmetic.
//!
//! [`lease::LeaseElection`] is the other backend (`backend = "etcd"`): the owner holds an etcd
//! key bound to its lease instead of winning by adverts; the same outputs, the same view.

mod balance;
mod cluster;
mod config;
mod garp;
pub mod history;
pub mod lease;
mod member;
mod metrics;
mod output;
mod rank;
mod replay;
mod view;
pub mod wire;

pub use balance::lan_balance;
pub use cluster::{Boot, Cluster, ADDRESS_LIFETIME, ADDRESS_REFRESH, MAX_MEMBERS};
pub use config::{Config, ConfigError, Timing, MAX_ADVERT_INTERVAL, MIN_ADVERT_INTERVAL};
pub use garp::GARP_SCHEDULE;
pub use history::{Event, EventKind, History, Snapshot, SnapshotError, MAX_EVENTS};
pub use metrics::{Metrics, RejectReason};
pub use output::{Notice, Output, TakeoverReason};
pub use rank::Rank;
pub use view::{history_view, rfc3339, ClusterView, EventView, MemberView, Pick};

//! busway-discovery: etcd as the registry of CONTRACT 6 (docs/DISCOVERY.md).
//!
//! A node registers its [`NodeRecord`] under `PREFIX/nodes/NAMESPACE/NAME`, bound to one lease
//! it keeps alive, and watches the prefix: a snapshot, then the watch. What it sees is a
//! [`View`] (every valid record, its own included) and a stream of [`Update`]s — `Add`,
//! `Remove`, `Reset` — that label routing turns into target sets. Records that break a rule
//! are [`Rejected`]: ignored, logged once, counted. etcd being away is never fatal: the last
//! view stays, [`Discovery::up`] says false and [`Discovery::last_error`] says why.
//!
//! - [`record`]: the record and its key;
//! - [`parse`]: the rules a record read from etcd must pass;
//! - [`view`]: the view, and how snapshots and events change it (no etcd in it);
//! - `holder`: whether a record found at this node's key may be replaced;
//! - `rejections`: counting ignored records, logging each once;
//! - `etcd`: a thin etcd v3 client over tonic, on stubs generated once and committed;
//! - `calls`: the etcd calls, each bounded in time;
//! - `driver`: the task: sessions, keepalive, watch, re-registration;
//! - `shared`: what the handle reads of the task's state;
//! - [`discovery`]: the handle the node holds;
//! - [`settings`]: `[discovery]` and the start error;
//! - [`election`]: `[cluster] backend = "etcd"`, the owner key under a lease of its own.

pub mod discovery;
pub mod election;
pub mod parse;
pub mod record;
pub mod settings;
pub mod view;

mod calls;
mod driver;
mod etcd;
mod holder;
mod rejections;
mod shared;

pub use discovery::Discovery;
pub use parse::{parse_record, Rejected, MAX_RECORD_BYTES};
pub use record::{nodes_prefix, record_key, AdvertiseRelay, Gateway, Host, NodeRecord};
pub use settings::{Settings, StartError};
pub use view::{Update, View};

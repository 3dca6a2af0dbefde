//! A thin etcd v3 client: exactly the calls discovery makes, over tonic's `Channel`.
//!
//! Why not the `etcd-client` crate: its build script runs `protoc` on every build, and busway
//! builds on a fresh machine with no `protoc` (docs/ARCHITECTURE.md). So the stubs for the part
//! of etcd's API used here (KV Range and Txn with Put/DeleteRange inside; Watch; Lease Grant,
//! Revoke and KeepAlive) are generated once from etcd's .proto files and committed
//! (`pb_generated.rs`, scripts/gen-etcd-proto), like busway-grpc's.
//!
//! - `client`: one connection and its calls;
//! - `streams`: the keepalive and watch streams;
//! - `ops`: the requests of a read and of the guarded writes;
//! - `error`: what any of it can fail with;
//! - `pb`: the generated messages and stubs.

mod client;
mod error;
pub(crate) mod ops;
mod pb;
mod streams;

pub(crate) use client::{Client, Options};
pub(crate) use error::Error;
pub(crate) use pb::etcdserverpb::{RangeRequest, TxnRequest, WatchCreateRequest, WatchResponse};
pub(crate) use pb::mvccpb::KeyValue;
pub(crate) use streams::{KeepAlives, LeaseKeeper, WatchStream};

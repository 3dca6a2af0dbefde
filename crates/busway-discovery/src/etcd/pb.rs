//! etcd's messages and client stubs, for the calls discovery makes and no others.
//!
//! The code in `pb_generated.rs` is what `tonic-prost-build` writes from the etcd .proto files in
//! `crates/busway-discovery/proto` (see scripts/gen-etcd-proto); it is committed so that building
//! busway needs no `protoc`. Unused parts of it (the Put and DeleteRange RPCs, fields discovery
//! never sets) are etcd's API as it is, not trimmed further.

#![allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    missing_docs,
    non_camel_case_types
)]

include!("pb_generated.rs");

//! The messages and the client and server stubs of `proto/upstream.proto`.
//!
//! The code in `pb_generated.rs` is what `tonic-prost-build` writes (see scripts/gen-proto); it is
//! committed so that building busway needs no `protoc`.

#![allow(clippy::all, clippy::pedantic, missing_docs, non_camel_case_types)]

include!("pb_generated.rs");

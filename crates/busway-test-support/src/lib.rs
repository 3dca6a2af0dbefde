//! Helpers for busway's integration tests.
//!
//! Tests run the real `busway` binary on loopback with port 0: [`Proc`] starts it, waits for its
//! `ready` line, records every `listening SERVICE URL` line, and kills it by pid when dropped.
//! [`backends`] has servers with the behaviours the contract talks about; [`http`] is a tiny
//! admin-API client; [`etcd`] runs a real etcd (one member or a cluster); [`sockets`] tells
//! which TCP peers a process is connected to; [`lab`] builds a LAN of network namespaces for
//! the cluster's scenario tests, and [`lab_etcd`] an etcd inside it. Everything is plain `std` (threads, blocking sockets) so tests
//! stay simple.

pub mod backends;
pub mod dns;
pub mod etcd;
pub mod forward;
pub mod http;
pub mod lab;
pub mod lab_etcd;
pub mod proc;
pub mod rst;
pub mod sockets;
pub mod witness;

pub use proc::{Proc, TempDir};

/// `tcp://127.0.0.1:PORT` -> `127.0.0.1:PORT`.
pub fn hostport(url: &str) -> String {
    url.trim_start_matches("tcp://").to_string()
}

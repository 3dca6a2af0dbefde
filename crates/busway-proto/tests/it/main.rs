//! Integration tests of the protocol: two connections in memory with a fake clock.

mod bounds;
mod corpus;
mod flow;
mod handshake;
mod harness;
mod links;
mod liveness;
mod multilink;
mod multilink_loss;
mod props;
mod resume;
mod streams;
mod trust;

//! Whole clusters on a simulated LAN with a fake clock, and the wire under hostile bytes.

mod lan;
mod takeover;

//! Whole clusters on a simulated LAN with a fake clock, and the wire under hostile bytes.

mod frozen;
mod heal;
mod hostile;
mod lan;
mod loss;
mod takeover;

//! Whole clusters on a simulated LAN with a fake clock, and the wire under hostile bytes.

mod flight;
mod frozen;
mod heal;
mod history;
mod hostile;
mod lan;
mod leftover;
mod loss;
mod props;
mod takeover;
mod view;

//! Scraping leaks nothing: after a thousand scrapes of a loaded node (1,000 sessions, 64 peers,
//! a gateway service), the heap holds no more than after ten.
//!
//! A test binary of its own, because it counts every allocation of the process through its
//! global allocator. The node's runtime runs only when blocked on, and nothing blocks on it
//! between the scrapes, so what the count sees is the scrapes alone.

#[path = "../benches/fixture/mod.rs"]
mod fixture;

use std::alloc::System;

use busway_node::admin::prom::metrics_text;
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

#[test]
fn a_thousand_scrapes_hold_no_more_memory_than_ten() {
    let loaded = fixture::loaded(1_000, 64);
    let scrape = || {
        let text = metrics_text(&loaded.node);
        assert!(text.contains("busway_peer_transports{peer=\"peer-63\",state=\"up\"} 1\n"));
    };
    for _ in 0..10 {
        scrape();
    }
    let after_10 = ALLOCATOR.allocated();
    for _ in 10..1_000 {
        scrape();
    }
    let after_1000 = ALLOCATOR.allocated();
    println!("live heap bytes: {after_10} after 10 scrapes, {after_1000} after 1,000");
    assert!(
        after_1000 <= after_10,
        "{after_10} bytes live after 10 scrapes, {after_1000} after 1,000"
    );
}

//! `Gateway::flush`, what a node calls before it stops: everything queued for an upstream has
//! reached it when flush says so, and flush gives up at its limit and says that too.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{sink, ANSWER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_returns_once_the_upstream_has_read_everything_queued() {
    let s = sink().await;
    let gw = s.gateway(false).await;
    let (d, taken) = s.stall(&gw).await;
    drop(d);
    assert!(s.seen.data_bytes.load(Ordering::Acquire) < taken);
    // The upstream reads again only while flush is already waiting.
    let controls = s.controls.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        controls.pause(false);
    });
    assert!(gw.flush(ANSWER).await, "flushed within {ANSWER:?}");
    assert_eq!(s.seen.data_bytes.load(Ordering::Acquire), taken);
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_gives_up_at_its_limit_and_says_so() {
    let s = sink().await;
    let gw = s.gateway(false).await;
    let (d, _) = s.stall(&gw).await;
    drop(d);
    let limit = Duration::from_millis(300);
    let t0 = Instant::now();
    assert!(
        !gw.flush(limit).await,
        "an upstream that reads nothing was flushed"
    );
    let took = t0.elapsed();
    assert!(
        took >= limit && took < limit + Duration::from_millis(500),
        "{took:?}"
    );
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_flushes_at_once() {
    let s = sink().await;
    let gw = s.gateway(false).await;
    let t0 = Instant::now();
    assert!(gw.flush(ANSWER).await);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    gw.shutdown();
}

//! Lifecycle events against an upstream that is healthy but has stopped reading its call: the
//! gateway holds a bounded number of them, spawns nothing to wait for room, and counts exactly
//! what it drops.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use busway_grpc::{EVENT_QUEUE, QUEUE};
use common::{metric, sink, until, ANSWER, CHUNK};

const DROPPED: &str = "busway_grpc_events_dropped_total{service=\"gw\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departures_while_the_queue_is_full_spawn_nothing_and_every_drop_is_counted() {
    let s = sink().await;
    let gw = s.gateway(true).await;
    let k = EVENT_QUEUE + 100;
    let mut clients = Vec::with_capacity(k);
    for i in 0..k {
        clients.push(gw.attach(format!("client {i}")).await.expect("attached"));
    }
    assert!(
        until(ANSWER, || s.seen.connected.load(Ordering::Acquire)
            == k as u64)
        .await
    );

    // The upstream stops reading; one client fills its queue and the HTTP/2 window behind it.
    let (_flooder, taken) = s.stall(&gw).await;
    // The queue, the call's 1 MiB stream window and what tonic and h2 hold between them.
    let bound = (QUEUE * CHUNK + (1 << 20) + 4 * CHUNK) as u64;
    assert!(taken <= bound, "{taken} bytes taken, bound {bound}");
    assert_eq!(metric(&gw, DROPPED), Some(0));

    // Every client leaves at once, from a drop: nothing may wait, so nothing may be spawned.
    let tasks = tokio::runtime::Handle::current().metrics();
    let before = tasks.num_alive_tasks();
    drop(clients);
    let after = tasks.num_alive_tasks();
    // A few tasks of the runtime's own come and go; one per event would be hundreds.
    assert!(after < before + 8, "{before} tasks before, {after} after");
    let dropped = (k - EVENT_QUEUE) as u64;
    assert_eq!(metric(&gw, DROPPED), Some(dropped));
    assert_eq!(gw.downstream_count(), 1);

    // Reading again, the upstream gets the data and exactly the events that were kept.
    s.controls.pause(false);
    let all_in = until(ANSWER, || {
        s.seen.data_bytes.load(Ordering::Acquire) == taken
            && s.seen.disconnected.load(Ordering::Acquire) == EVENT_QUEUE as u64
    })
    .await;
    assert!(
        all_in,
        "{} of {taken} bytes, {} DISCONNECTED",
        s.seen.data_bytes.load(Ordering::Acquire),
        s.seen.disconnected.load(Ordering::Acquire)
    );
    assert_eq!(
        s.seen.disconnected.load(Ordering::Acquire) + dropped,
        k as u64
    );
    assert_eq!(metric(&gw, DROPPED), Some(dropped));
    gw.shutdown();
}

/// A client that leaves before its `CONNECTED` was queued (its attach was cancelled while the
/// queue was full) is not announced as leaving either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_announced_is_not_announced_leaving() {
    let s = sink().await;
    let gw = s.gateway(true).await;
    let (flooder, taken) = s.stall(&gw).await;
    let late = tokio::time::timeout(Duration::from_millis(200), gw.attach("late".into())).await;
    assert!(late.is_err(), "an arrival waits for room in the queue");
    drop(flooder);
    s.controls.pause(false);
    assert!(until(ANSWER, || s.seen.disconnected.load(Ordering::Acquire) == 1).await);
    assert_eq!(s.seen.data_bytes.load(Ordering::Acquire), taken);
    assert_eq!(s.seen.connected.load(Ordering::Acquire), 1);
    assert_eq!(metric(&gw, DROPPED), Some(0));
    gw.shutdown();
}

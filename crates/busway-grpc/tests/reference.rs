//! The reference upstream in process, spoken to by a plain tonic client: the gateway's tests and
//! benchmarks rely on exactly these answers, so they are pinned here without busway in between.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use busway_grpc::pb::output_stream_request::{Broadcast, Target};
use busway_grpc::pb::DownstreamEvent;
use busway_grpc::reference::{Mode, Options, REPLY_QUEUE, SALUT};
use bytes::Bytes;
use common::{Server, ANSWER};

const A: &str = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";
const B: &str = "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b";

/// Long enough that a reply that was going to come would have come on loopback.
const QUIET: Duration = Duration::from_millis(300);

fn echo() -> Options {
    Options {
        mode: Mode::Echo,
        ..Options::default()
    }
}

fn to(uuid: &str) -> Option<Target> {
    Some(Target::ClientUuid(uuid.to_string()))
}

fn broadcast(b: Broadcast) -> Option<Target> {
    Some(Target::Broadcast(b as i32))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_answers_true_until_toggled() {
    let s = Server::start(Options::default()).await;
    let mut c = s.client().await;
    let r = c.ready(()).await.expect("ready").into_inner();
    assert!(r.ready);
    assert_eq!(r.time.len(), 24, "RFC 3339 with milliseconds: {}", r.time);
    assert!(!s.controls.toggle_ready(), "the toggle reports not ready");
    assert!(!c.ready(()).await.expect("ready").into_inner().ready);
    assert!(s.controls.toggle_ready());
    assert!(c.ready(()).await.expect("ready").into_inner().ready);

    let lazy = Server::start(Options {
        not_ready: true,
        ..Options::default()
    })
    .await;
    let r = lazy.client().await.ready(()).await.expect("ready");
    assert!(!r.into_inner().ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_answers_one_result_per_heartbeat() {
    let s = Server::start(Options::default()).await;
    let mut live = s.live().await;
    for _ in 0..3 {
        live.beat().await;
    }
    for _ in 0..3 {
        let r = live.result_within(ANSWER).await.expect("a LiveResult");
        assert!(r.live);
        assert_eq!(r.time.len(), 24, "{}", r.time);
    }
    assert!(live.result_within(QUIET).await.is_none(), "one per beat");

    assert!(!s.controls.toggle_live(), "the toggle reports silence");
    live.beat().await;
    assert!(live.result_within(QUIET).await.is_none(), "silent");
    assert!(s.controls.toggle_live());
    live.beat().await;
    let again = live.result_within(ANSWER).await.expect("answering again");
    assert!(again.live);
    assert!(
        live.result_within(QUIET).await.is_none(),
        "the silent beat stays unanswered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_answers_no_heartbeat() {
    let s = Server::start(Options {
        silent_live: true,
        ..Options::default()
    })
    .await;
    let mut live = s.live().await;
    live.beat().await;
    assert!(live.result_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salut_alternates_sender_and_everyone_within_each_call() {
    let s = Server::start(Options::default()).await;
    let mut call = s.call().await;
    for (i, who) in [A, B, A, B].into_iter().enumerate() {
        call.data(who, "bonjour").await;
        let r = call.reply().await;
        assert_eq!(r.payload, SALUT.as_bytes());
        let want = if i % 2 == 0 {
            to(who)
        } else {
            broadcast(Broadcast::All)
        };
        assert_eq!(r.target, want, "reply {i}");
    }
    // A new call starts over with the sender.
    let mut second = s.call().await;
    second.data(B, "encore").await;
    assert_eq!(second.reply().await.target, to(B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_not_answered_and_do_not_count() {
    let s = Server::start(Options::default()).await;
    let mut call = s.call().await;
    call.send(A, Bytes::new(), DownstreamEvent::Connected).await;
    call.send(A, Bytes::new(), DownstreamEvent::Disconnected)
        .await;
    assert!(!call.replies_within(QUIET).await, "no reply to an event");
    call.data(A, "x").await;
    assert_eq!(
        call.reply().await.target,
        to(A),
        "still the first data reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_is_byte_exact() {
    let s = Server::start(echo()).await;
    let mut call = s.call().await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    for p in [
        Vec::new(),
        b"a".to_vec(),
        every_byte,
        big,
        b"@unknown:x".to_vec(),
    ] {
        call.data(A, p.clone()).await;
        let r = call.reply().await;
        assert_eq!(r.target, to(A));
        assert!(r.payload == p, "{} bytes came back altered", p.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_prefixes_the_tag() {
    let s = Server::start(Options {
        tag: "A:".into(),
        ..echo()
    })
    .await;
    let mut call = s.call().await;
    call.data(B, "hello").await;
    let r = call.reply().await;
    assert_eq!((r.target, &r.payload[..]), (to(B), &b"A:hello"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_choose_the_target() {
    let s = Server::start(echo()).await;
    let mut call = s.call().await;
    let cases = [
        (
            "@all:to everyone".to_string(),
            broadcast(Broadcast::All),
            "to everyone",
        ),
        (
            "@active:busy".to_string(),
            broadcast(Broadcast::Active),
            "busy",
        ),
        (
            "@inactive:idle".to_string(),
            broadcast(Broadcast::NotActive),
            "idle",
        ),
        (
            format!("@to:{B}:for b: with colons"),
            to(B),
            "for b: with colons",
        ),
        ("@to:no-colon".to_string(), to("no-colon"), ""),
    ];
    for (command, target, payload) in cases {
        call.data(A, command.clone()).await;
        let r = call.reply().await;
        assert_eq!(r.target, target, "{command}");
        assert_eq!(r.payload, payload.as_bytes(), "{command}");
    }
    call.data(A, "@big:100000").await;
    let r = call.reply().await;
    assert_eq!(r.target, to(A));
    assert!(r.payload.len() == 100_000 && r.payload.iter().all(|b| *b == b'x'));
    call.data(A, "@big:lots").await;
    assert!(call.reply().await.payload.is_empty(), "a bad size is zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_keep_the_order_of_their_messages() {
    let s = Server::start(echo()).await;
    let mut call = s.call().await;
    let sender = {
        let tx = call.tx.clone();
        tokio::spawn(async move {
            for i in 0..2000u32 {
                let m = busway_grpc::pb::InputStreamRequest {
                    time: busway_grpc::time::now(),
                    client_uuid: A.into(),
                    payload: Bytes::from(i.to_be_bytes().to_vec()),
                    event: 0,
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        })
    };
    for i in 0..2000u32 {
        assert_eq!(call.reply().await.payload, i.to_be_bytes()[..], "reply {i}");
    }
    sender.await.expect("sender");
}

/// A client that sends without reading replies must stall, not make the upstream queue
/// everything: that is what busway's own flow control relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_no_reply_is_held_back() {
    const MESSAGES: u64 = 2000;
    let s = Server::start(echo()).await;
    let mut call = s.call().await;
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (tx, sent) = (call.tx.clone(), sent.clone());
        let payload = Bytes::from(vec![b'p'; 64 << 10]);
        tokio::spawn(async move {
            for _ in 0..MESSAGES {
                let m = busway_grpc::pb::InputStreamRequest {
                    time: busway_grpc::time::now(),
                    client_uuid: A.into(),
                    payload: payload.clone(),
                    event: 0,
                };
                if tx.send(m).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let stalled_at = wait_until_still(&sent, Duration::from_secs(20)).await;
    let stalled_at = stalled_at.expect("the sender stalls");
    // What can be in flight at most, in 64 KiB messages: the server's reply queue, the server's
    // 1 MiB receive window, the client's receive window for replies (hyper's default, 2 MiB),
    // and a few in hand (the client's channel, tonic's buffers, the one being answered).
    let bound = REPLY_QUEUE as u64 + 16 + 32 + 8;
    assert!(
        stalled_at <= bound,
        "{stalled_at} messages sent without any reply read, bound {bound}"
    );
    // Reading replies lets it go on.
    for _ in 0..stalled_at.min(300) {
        call.reply().await;
    }
    let deadline = tokio::time::Instant::now() + ANSWER;
    while sent.load(Ordering::Relaxed) == stalled_at {
        assert!(tokio::time::Instant::now() < deadline, "still stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sender.abort();
}

/// The count once it has not moved for a second, or `None` if it keeps moving for `limit`.
async fn wait_until_still(n: &AtomicU64, limit: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    let (mut last, mut still) = (u64::MAX, 0);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = n.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        if still == 4 {
            return Some(now);
        }
        last = now;
    }
    None
}

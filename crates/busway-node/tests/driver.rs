//! The transport driver in process, over an in-memory pipe, with paused time: what sessions see
//! of a stream, and what a hostile or broken peer can and cannot make a node do.

use std::sync::Arc;
use std::time::Duration;

use busway_node::bus::driver::{self, Closed, OnOpen, Opened, Spec};
use busway_node::bus::{BusStream, StreamEnd, Transport};
use busway_node::metrics::Metrics;
use busway_proto::frame::Body;
use busway_proto::{
    Config, Connection, Frame, OpenParams, Ping, ProtoError, ResetCode, Side, DEFAULT_STREAM_WINDOW,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn config(node: &str) -> Config {
    Config {
        node: node.into(),
        secret: Some(b"a-secret-of-sixteen+".to_vec()),
        ..Config::default()
    }
}

fn params() -> OpenParams {
    OpenParams {
        service: "chat".into(),
        session_id: "s1".into(),
        ..OpenParams::default()
    }
}

/// Two nodes' transports over one pipe: the initiator's, and the acceptor's with the streams
/// its peer opens.
struct Pair {
    i: Arc<Transport>,
    a: Arc<Transport>,
    opened: mpsc::UnboundedReceiver<Opened>,
    run_i: JoinHandle<Closed>,
    run_a: JoinHandle<Closed>,
}

/// Runs the initiator's driver of a new transport over `io`, counting into fresh metrics.
fn run_counted(io: DuplexStream, node: &str) -> (Arc<Transport>, Arc<Metrics>, JoinHandle<Closed>) {
    let t = Transport::new(node.into(), Side::Initiator, config("ingress"));
    let metrics = Arc::new(Metrics::default());
    let spec = Spec {
        on_open: None,
        metrics: metrics.clone(),
        established: None,
        on_ticket: None,
        takes_streams: None,
    };
    let run = tokio::spawn(driver::run(io, t.clone(), spec));
    (t, metrics, run)
}

fn spec(on_open: Option<OnOpen>) -> Spec {
    Spec {
        on_open,
        metrics: Arc::new(Metrics::default()),
        established: None,
        on_ticket: None,
        takes_streams: None,
    }
}

async fn pair(pipe: usize) -> Pair {
    let (x, y) = tokio::io::duplex(pipe);
    let i = Transport::new("a".into(), Side::Initiator, config("ingress"));
    let a = Transport::new("i".into(), Side::Acceptor, config("egress"));
    let (tx, opened) = mpsc::unbounded_channel();
    let on_open: OnOpen = Arc::new(move |o| {
        let _ = tx.send(o);
    });
    let run_i = tokio::spawn(driver::run(x, i.clone(), spec(None)));
    let run_a = tokio::spawn(driver::run(y, a.clone(), spec(Some(on_open))));
    let p = Pair {
        i,
        a,
        opened,
        run_i,
        run_a,
    };
    wait(|| p.i.usable() && p.a.usable()).await;
    p
}

/// Polls `f` on the (paused) clock until it holds; panics after a minute of test time.
async fn wait(mut f: impl FnMut() -> bool) {
    for _ in 0..60_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached");
}

async fn read_to_end(s: &BusStream) -> Result<Vec<u8>, StreamEnd> {
    let mut got = Vec::new();
    while let Some(b) = s.read(usize::MAX).await? {
        got.extend_from_slice(&b);
        s.release(b.len());
    }
    Ok(got)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(start_paused = true)]
async fn a_stream_carries_every_byte_both_ways_and_half_closes() {
    let mut p = pair(64 * 1024).await;
    let s = p.i.open(params()).unwrap();
    let data = Bytes::from(pattern(3 * DEFAULT_STREAM_WINDOW as usize + 123));
    let up = async {
        s.write_all(data.clone()).await.unwrap();
        s.finish().unwrap();
    };
    let o = p.opened.recv().await.unwrap();
    assert_eq!(o.open.service, "chat");
    let (_, got) = tokio::join!(up, read_to_end(&o.stream));
    assert_eq!(got.unwrap(), data);
    // The other way after the half-close, then the egress's fin.
    o.stream
        .write_all(Bytes::from_static(b"reply"))
        .await
        .unwrap();
    o.stream.finish().unwrap();
    assert_eq!(read_to_end(&s).await.unwrap(), b"reply");
    drop((s, o));
    // Both ended both ways: the streams are forgotten at both nodes, without a reset.
    wait(|| p.i.streams_open() == 0 && p.a.streams_open() == 0).await;
}

/// A handle dropped while its transport is backed up stops its stream all the same: the peer's
/// session sees the reset at once, because stopping is a state change, not a queued command.
#[tokio::test(start_paused = true)]
async fn dropping_a_handle_under_back_pressure_resets_the_peer_stream() {
    let mut p = pair(16 * 1024).await;
    // Eight streams fill their windows towards an egress that reads nothing.
    let mut streams = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..8 {
        let s = p.i.open(params()).unwrap();
        while let Ok(n) = s.capacity_now() {
            if n == 0 {
                break;
            }
            let mut b = Bytes::from(vec![7u8; n]);
            s.write_now(&mut b).unwrap();
        }
        streams.push(s);
        peers.push(p.opened.recv().await.unwrap());
    }
    let victim = streams.remove(3);
    drop(victim);
    let peer = &peers[3].stream;
    let end = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match peer.read(usize::MAX).await {
                Ok(Some(b)) => peer.release(b.len()),
                other => return other,
            }
        }
    })
    .await
    .expect("the reset arrives");
    assert_eq!(
        end,
        Err(StreamEnd::Reset(ResetCode::Cancel, "stream closed".into()))
    );
    // The others are untouched, and the initiator forgot the dropped one.
    assert_eq!(p.i.streams_open(), 7);
    assert!(peers[2].stream.capacity_now().is_ok());
}

/// A raw peer, driven by hand: the handshake, then whatever the test makes it send.
async fn raw_acceptor(io: &mut DuplexStream, cfg: Config) -> Result<Connection, ProtoError> {
    let now = tokio::time::Instant::now().into_std();
    let mut c = Connection::new(Side::Acceptor, cfg, [5; 32], now);
    let mut rbuf = BytesMut::new();
    while !c.is_established() {
        let mut out = BytesMut::new();
        c.transmit(&mut out);
        io.write_all(&out).await.unwrap();
        if io.read_buf(&mut rbuf).await.unwrap() == 0 {
            return Err(c.error().cloned().unwrap_or(ProtoError::DeadPeer));
        }
        c.handle_input(&mut rbuf, now)?;
    }
    // The acceptor is established by the Auth; its Accept establishes the other side.
    let mut out = BytesMut::new();
    c.transmit(&mut out);
    io.write_all(&out).await.unwrap();
    Ok(c)
}

/// A peer that grants no credit would hang every session on the transport while still
/// answering pings: the handshake refuses it.
#[tokio::test(start_paused = true)]
async fn a_peer_that_grants_no_credit_is_refused_at_the_handshake() {
    let (x, mut y) = tokio::io::duplex(64 * 1024);
    let i = Transport::new("stingy".into(), Side::Initiator, config("ingress"));
    let run = tokio::spawn(driver::run(x, i.clone(), spec(None)));
    let stingy = Config {
        stream_window: 0,
        ..config("egress")
    };
    let peer = tokio::spawn(async move { raw_acceptor(&mut y, stingy).await.map(|_| ()) });
    let closed = tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .expect("closed at once")
        .unwrap();
    assert!(
        matches!(&closed, Closed::Proto(ProtoError::Handshake("protocol"))),
        "{closed}"
    );
    assert!(!i.usable());
    assert!(i.open(params()).is_err());
    // The stingy acceptor was established by the Auth; the initiator refused its Accept, and
    // the peer hears why in a GoAway.
    assert!(peer.await.unwrap().is_ok());
}

/// A peer that takes what its credit allows and never reads it: once what we may send has
/// waited for its socket for the dead-peer delay, the transport is closed as a flood, counted,
/// and what we held for it stayed within the driver's bound.
#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_closed_as_a_flood() {
    let (x, mut y) = tokio::io::duplex(4 * 1024);
    let (i, metrics, run) = run_counted(x, "sink");
    // The peer answers the handshake, then reads nothing ever again; it keeps pinging like a
    // live node, so only the writes that wait on it can tell.
    let sink = tokio::spawn(async move {
        let mut c = raw_acceptor(&mut y, config("egress")).await.unwrap();
        for t in 0.. {
            let mut ping = BytesMut::new();
            // Keyed like everything after a proved handshake.
            c.encode_frame(&Frame::new(Body::Ping(Ping { timepoint_us: t })), &mut ping);
            if y.write_all(&ping).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    wait(|| i.usable()).await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let s = i.open(params()).unwrap();
        let mut b = Bytes::from(pattern(s.capacity_now().unwrap()));
        s.write_now(&mut b).unwrap();
        streams.push(s);
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("closed")
        .unwrap();
    assert!(
        matches!(&closed, Closed::Proto(ProtoError::Flood)),
        "{closed}"
    );
    assert_eq!(metrics.frames_rejected.get("flood"), 1);
    // The sessions learn it at once.
    assert!(matches!(
        streams[0].capacity().await,
        Err(StreamEnd::Closed(_))
    ));
    sink.abort();
}

/// Pings by the thousand within a second: no node does that; the transport is closed at once.
#[tokio::test(start_paused = true)]
async fn a_ping_flood_is_closed_at_once() {
    let (x, mut y) = tokio::io::duplex(64 * 1024);
    let (_i, metrics, run) = run_counted(x, "pinger");
    let flooder = tokio::spawn(async move {
        let mut c = raw_acceptor(&mut y, config("egress")).await.unwrap();
        let mut pings = BytesMut::new();
        for t in 0..1000 {
            c.encode_frame(
                &Frame::new(Body::Ping(Ping { timepoint_us: t })),
                &mut pings,
            );
        }
        let _ = y.write_all(&pings).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let closed = tokio::time::timeout(Duration::from_millis(100), run)
        .await
        .expect("closed at once")
        .unwrap();
    assert!(
        matches!(&closed, Closed::Proto(ProtoError::Flood)),
        "{closed}"
    );
    assert_eq!(metrics.frames_rejected.get("flood"), 1);
    flooder.abort();
}

/// Draining: after GoAway no stream opens, the open one finishes with every byte, and the
/// transport then closes by itself.
#[tokio::test(start_paused = true)]
async fn go_away_lets_open_streams_finish_then_closes_the_transport() {
    let mut p = pair(64 * 1024).await;
    let s = p.i.open(params()).unwrap();
    let o = p.opened.recv().await.unwrap();
    p.a.go_away("node shutting down");
    wait(|| !p.i.usable()).await;
    assert!(p.i.open(params()).is_err(), "no new stream after GoAway");
    // The last bytes and the fin are queued and the handle dropped at once, as a session that
    // ends does: they still arrive.
    let last = Bytes::from(pattern(100_000));
    s.write_all(last.clone()).await.unwrap();
    s.finish().unwrap();
    o.stream.finish().unwrap();
    assert_eq!(read_to_end(&o.stream).await.unwrap(), last);
    assert_eq!(read_to_end(&s).await.unwrap(), b"");
    drop((s, o));
    let (ci, ca) = tokio::join!(p.run_i, p.run_a);
    let (ci, ca) = (ci.unwrap(), ca.unwrap());
    assert!(ci.is_routine() && ca.is_routine(), "{ci} / {ca}");
    assert!(
        matches!(ci, Closed::Drained) || matches!(ca, Closed::Drained),
        "{ci} / {ca}"
    );
}

/// A stream's writer never sends beyond the credit it was given, however large its writes,
/// and a receiver that reads slowly holds at most its window.
#[tokio::test(start_paused = true)]
async fn writes_wait_for_credit_and_the_receiver_holds_at_most_its_window() {
    let mut p = pair(64 * 1024).await;
    let s = p.i.open(params()).unwrap();
    let data = Bytes::from(pattern(4 << 20));
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            s.write_all(data).await.unwrap();
            s.finish().unwrap();
            s
        })
    };
    let o = p.opened.recv().await.unwrap();
    let mut got = Vec::new();
    let mut most = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        most = most.max(p.a.buffered_bytes());
        match o.stream.read(16 * 1024).await.unwrap() {
            Some(b) => {
                got.extend_from_slice(&b);
                o.stream.release(b.len());
            }
            None => break,
        }
    }
    assert!(got == data, "{} bytes", got.len());
    assert!(most <= DEFAULT_STREAM_WINDOW as u64, "held {most}");
    assert!(most > 0);
    drop(writer.await.unwrap());
}

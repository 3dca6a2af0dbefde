//! Fan-out without loss (issue 10, items 1–3 and 8): losers are closed at the latch even when
//! the client says nothing more; a write to a healthy target is never cut because another
//! target ended; credit holds through fan-outs composed over two hops; full-duplex replies keep
//! each read chunk whole; a fan-out that reaches one egress twice gets both legs.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;
use witness::{witness, Log};

/// Waits until every connection `log` saw was closed by the proxy; returns the latest close.
fn closed_within(log: &Log, limit: Duration) -> Option<Instant> {
    let ok = wait_for(limit, || {
        let l = log.lock().unwrap();
        !l.is_empty() && l.iter().all(|s| s.closed_at.is_some())
    });
    let l = log.lock().unwrap();
    ok.then(|| l.iter().filter_map(|s| s.closed_at).max())?
}

/// The client sends once, reads the winner's answer, and then says nothing more: the losers'
/// connections must close within a second of the answer, not whenever the client next writes.
fn losers_close_after_one_answer(c: &mut std::net::TcpStream, winner: &Log, losers: &[&Log]) {
    c.write_all(b"hello all").unwrap();
    assert_eq!(read_n(c, 3), b"win");
    let answered = winner.lock().unwrap()[0]
        .answered_at
        .expect("winner answered");
    for (k, loser) in losers.iter().enumerate() {
        let closed = closed_within(loser, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("loser {k} is still open: {:?}", loser.lock().unwrap()));
        assert!(
            closed.saturating_duration_since(answered) < Duration::from_secs(1),
            "loser {k} closed {:?} after the answer",
            closed.saturating_duration_since(answered)
        );
    }
    // The winner is untouched and the session goes on, one to one.
    assert!(winner.lock().unwrap()[0].closed_at.is_none());
    roundtrip(c, b"only the winner now");
}

/// Two egress nodes from `e1` and `e2` and an ingress over both in `mode`, once both
/// transports are up.
struct TwoHops {
    _dir: TempDir,
    _egress: [Proc; 2],
    ingress: Proc,
}

impl TwoHops {
    fn new(tag: &str, e1: &str, e2: &str, mode: &str) -> TwoHops {
        let dir = TempDir::new(tag);
        let egress = [
            Proc::run_toml(&dir, "e1.toml", e1),
            Proc::run_toml(&dir, "e2.toml", e2),
        ];
        let peers = [egress[0].url("bus"), egress[1].url("bus")];
        let ingress = Proc::run_toml(&dir, "i.toml", &ingress_over_toml(&peers, mode, ""));
        wait_peers_up(&ingress.addr("admin"), 2);
        TwoHops {
            _dir: dir,
            _egress: egress,
            ingress,
        }
    }

    fn client(&self) -> std::net::TcpStream {
        connect(&self.ingress.addr("chat"))
    }

    /// The logs of all three nodes.
    fn stderr(&self) -> String {
        self._egress
            .iter()
            .chain([&self.ingress])
            .map(Proc::stderr)
            .collect()
    }
}

#[test]
fn half_duplex_losers_are_closed_at_the_latch_at_an_egress() {
    let (w, wl) = witness(Some((Duration::from_millis(50), b"win")));
    let (l1, ll1) = witness(None);
    let (l2, ll2) = witness(None);
    let chain = fan_chain(&[l1.url(), w.url(), l2.url()], "half-duplex", "");
    let mut c = chain.client();
    losers_close_after_one_answer(&mut c, &wl, &[&ll1, &ll2]);
}

#[test]
fn half_duplex_losers_are_closed_at_the_latch_at_an_ingress_over_peers() {
    let (w, wl) = witness(Some((Duration::from_millis(50), b"win")));
    let (l, ll) = witness(None);
    let hops = TwoHops::new(
        "latch-in",
        &egress_toml(&w.url(), ""),
        &egress_toml(&l.url(), ""),
        "half-duplex",
    );
    losers_close_after_one_answer(&mut hops.client(), &wl, &[&ll]);
}

#[test]
fn half_duplex_losers_are_closed_at_both_hops_when_both_fan_out() {
    let (w, wl) = witness(Some((Duration::from_millis(50), b"win")));
    let losers: Vec<_> = (0..3).map(|_| witness(None)).collect();
    let hops = TwoHops::new(
        "latch-both",
        &egress_fan_toml(&[w.url(), losers[0].0.url()], "half-duplex", ""),
        &egress_fan_toml(&[losers[1].0.url(), losers[2].0.url()], "half-duplex", ""),
        "half-duplex",
    );
    let logs: Vec<&Log> = losers.iter().map(|(_, l)| l).collect();
    losers_close_after_one_answer(&mut hops.client(), &wl, &logs);
}

/// A target that closes (never answering) while a large write to another, healthy target is
/// pending must not cut that write: the healthy target gets every byte and wins at the end.
#[test]
fn a_pending_write_to_a_healthy_target_is_never_cut_when_another_ends() {
    let counter = witness::slow_counter(4 * 1024, Duration::from_millis(1));
    let quitter = witness::close_after(Duration::from_millis(150));
    let chain = fan_chain(&[counter.url(), quitter.url()], "half-duplex", "");
    let mut c = chain.client();
    // More than the kernel buffers between the egress and the counter, so the egress's write
    // to it is pending when the other target closes.
    const N: usize = 6 << 20;
    let got = send_all_and_read(&mut c, &vec![b'x'; N]);
    assert_eq!(String::from_utf8_lossy(&got), format!("got {N} bytes"));
}

/// Half duplex at the ingress over two egress nodes that each fan out half duplex over two
/// backends: after the latch, 8 MiB each way, every byte back in order.
#[test]
fn composed_half_duplex_carries_8_mib_each_way_after_the_latch() {
    let banners: Vec<_> = (0..4).map(|_| backends::banner(b"HI")).collect();
    let urls: Vec<String> = banners.iter().map(|b| b.url()).collect();
    let hops = TwoHops::new(
        "compose-8m",
        &egress_fan_toml(&urls[..2], "half-duplex", ""),
        &egress_fan_toml(&urls[2..], "half-duplex", ""),
        "half-duplex",
    );
    let mut c = hops.client();
    assert_eq!(read_n(&mut c, 2), b"HI");
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 253) as u8).collect();
    let got = send_all_and_read(&mut c, &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    let log = hops.stderr();
    assert!(!log.contains("beyond its credit"), "{log}");
}

/// Full duplex: each chunk a target sends (16 KiB, read whole) reaches the client contiguously,
/// never interleaved with another target's bytes.
#[test]
fn full_duplex_keeps_each_read_chunk_whole() {
    const BLOCK: usize = 16 * 1024;
    const BLOCKS: usize = 24;
    let a = witness::blocks(b'A', BLOCK, BLOCKS, Duration::from_millis(3));
    let b = witness::blocks(b'B', BLOCK, BLOCKS, Duration::from_millis(3));
    let chain = fan_chain(&[a.url(), b.url()], "full-duplex", "");
    let mut c = chain.client();
    let got = read_n(&mut c, 2 * BLOCK * BLOCKS);
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=got.len() {
        if i == got.len() || got[i] != got[start] {
            runs.push((got[start], i - start));
            start = i;
        }
    }
    for (byte, len) in &runs {
        assert!(
            len % BLOCK == 0,
            "a run of {len} {:?} bytes: a chunk was split ({} runs)",
            *byte as char,
            runs.len()
        );
    }
    assert_eq!(got.iter().filter(|&&x| x == b'A').count(), BLOCK * BLOCKS);
    c.shutdown(Shutdown::Write).unwrap();
}

/// A fan-out whose two peers are one egress by two addresses: both legs arrive under the same
/// session id; each is its own session there, listed and kickable, and both echo.
#[test]
fn a_fan_out_that_reaches_one_egress_twice_gets_both_legs() {
    let backend = backends::echo();
    let dir = TempDir::new("twice");
    let cfg = egress_toml(&backend.url(), "").replace(
        "listen = [\"tcp://127.0.0.1:0\"]\nsecret",
        "listen = [\"tcp://127.0.0.1:0\", \"tcp://127.0.0.2:0\"]\nsecret",
    );
    let egress = Proc::run_toml(&dir, "e.toml", &cfg);
    let peers = egress.listening["bus"].clone();
    assert_eq!(peers.len(), 2, "{:?}", egress.listening);
    let ingress = Proc::run_toml(
        &dir,
        "i.toml",
        &ingress_over_toml(&peers, "full-duplex", ""),
    );
    wait_peers_up(&ingress.addr("admin"), 2);
    let mut c = connect(&ingress.addr("chat"));
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 2), b"xx", "one echo per leg");
    let admin = egress.addr("admin");
    let listed = http::get(&admin, "/v1/sessions").body;
    let ids: Vec<String> = listed
        .split("\"id\":\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert_eq!(
        ids.iter().filter(|i| i.ends_with(".2")).count(),
        1,
        "{ids:?}"
    );
    // Kicking one leg leaves the other listed and working.
    let kicked = ids.iter().find(|i| i.ends_with(".2")).unwrap();
    let r = http::request(
        "DELETE",
        &admin,
        &format!("/v1/sessions/{kicked}"),
        None,
        b"",
    );
    assert_eq!(r.status, 204);
    assert!(wait_for(Duration::from_secs(3), || http::get(
        &admin,
        "/v1/sessions"
    )
    .body
    .matches("\"id\":")
    .count()
        == 1));
    c.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut c, 1), b"y");
    let mut extra = [0u8; 1];
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        !matches!(c.read(&mut extra), Ok(1)),
        "the kicked leg still echoes"
    );
}

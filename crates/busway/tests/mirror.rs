//! Mirroring (an L4 tee): shadow targets get the client's bytes and EOF; their replies are
//! discarded; a slow or dead mirror never slows or breaks the real session; and a mirror holds
//! nothing of the node's beyond its session, whatever it does.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn mirrored_chain(backend: &str, mirrors: &[String]) -> Chain {
    let mirror = format!("mirror = {}\n", Chain::toml_list(mirrors));
    Chain::with(&egress_toml(backend, ""), |bus| ingress_toml(bus, &mirror))
}

#[test]
fn a_mirror_gets_the_clients_bytes_and_eof_and_its_replies_are_dropped() {
    let backend = backends::echo();
    let (mirror, seen) = backends::recorder(b"MIRROR-REPLY");
    let chain = mirrored_chain(&backend.url(), &[mirror.url()]);
    let mut c = chain.client();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let got = send_all_and_read(&mut c, &data);
    assert!(got == data, "the client got {} bytes", got.len());
    assert!(wait_for(Duration::from_secs(5), || seen
        .lock()
        .unwrap()
        .eof));
    assert!(seen.lock().unwrap().bytes == data);
}

#[test]
fn a_dead_mirror_does_not_break_the_session() {
    let backend = backends::echo();
    let dead = backends::refusing_addr();
    let chain = mirrored_chain(&backend.url(), &[format!("tcp://{dead}")]);
    let mut c = chain.client();
    for i in 0..20 {
        roundtrip(&mut c, format!("still fine {i}").as_bytes());
    }
}

#[test]
fn a_mirror_that_cannot_keep_up_is_cut_off_and_counted_while_the_session_runs_on() {
    let backend = backends::echo();
    let slow = backends::silent();
    let (good, seen) = backends::recorder(b"");
    let chain = mirrored_chain(&backend.url(), &[slow.url(), good.url()]);
    let mut c = chain.client();
    let data: Vec<u8> = (0..24_000_000u32).map(|i| (i % 239) as u8).collect();
    let got = send_all_and_read(&mut c, &data);
    assert!(
        got == data,
        "the real session lost bytes: {} of {}",
        got.len(),
        data.len()
    );
    let admin = chain.ingress.addr("admin");
    // The silent mirror is cut off by its write timeout, which may fire after a quick transfer.
    let dropped = || metric(&admin, "busway_mirror_dropped_total{service=\"chat\"}");
    wait_for(Duration::from_secs(10), || dropped().is_some());
    assert_eq!(dropped(), Some(1.0));
    // The mirror that keeps up still gets the whole copy.
    assert!(wait_for(Duration::from_secs(10), || seen
        .lock()
        .unwrap()
        .eof));
    assert_eq!(seen.lock().unwrap().bytes.len(), data.len());
}

/// How long after its session the node may keep a mirror's connection: the write timeout (3 s)
/// for a stalled mirror to take what is queued, or the linger (1 s) after our FIN for one that
/// took it, plus 2 s of slack for a loaded machine.
const MIRROR_LET_GO: Duration = Duration::from_secs(6);

/// The process's descriptor count once it stopped changing for 200 ms (at most 3 s).
fn settled_fds(p: &Proc) -> usize {
    let mut last = p.open_fds();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        let now = p.open_fds();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn assert_fds_back(p: &Proc, baseline: usize) {
    let back = wait_for(Duration::from_secs(2), || p.open_fds() <= baseline);
    assert!(
        back,
        "{} descriptors open, {baseline} before the session",
        p.open_fds()
    );
}

/// A chain whose ingress mirrors to a [`backends::held_mirror`], and the ingress's descriptor
/// count before any session.
fn held_mirror_chain(reads: bool) -> (Chain, backends::Backend, Arc<Mutex<backends::Held>>, usize) {
    let backend = backends::echo();
    let (mirror, held) = backends::held_mirror(reads);
    let chain = mirrored_chain(&backend.url(), &[mirror.url()]);
    let baseline = settled_fds(&chain.ingress);
    (chain, mirror, held, baseline)
}

#[test]
fn a_mirror_that_never_reads_nor_closes_is_closed_after_the_session_and_costs_no_descriptor() {
    let (chain, mirror, held, baseline) = held_mirror_chain(false);
    let mut c = chain.client();
    // Whether this fits in the mirror's socket buffers (then it gets our FIN and the linger) or
    // not (then its queue times out and it is reset), the node must let go within the bound.
    let data = backends::pattern(2 << 20);
    let got = send_all_and_read(&mut c, &data);
    assert!(got == data, "the client got {} bytes", got.len());
    drop(c);
    let ended = Instant::now();
    let closed = wait_for(MIRROR_LET_GO, || held.lock().unwrap().closed_at.is_some());
    assert!(
        closed,
        "the node still holds the mirror's connection {:?} after the session",
        ended.elapsed()
    );
    assert_eq!(mirror.accepted(), 1);
    assert_fds_back(&chain.ingress, baseline);
}

#[test]
fn a_mirror_that_reads_but_never_closes_is_closed_within_the_linger_after_our_fin() {
    let (chain, _mirror, held, baseline) = held_mirror_chain(true);
    let mut c = chain.client();
    roundtrip(&mut c, b"to the mirror too");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_all(&mut c).is_empty());
    drop(c);
    assert!(
        wait_for(Duration::from_secs(5), || held
            .lock()
            .unwrap()
            .eof_at
            .is_some()),
        "the mirror never got our FIN"
    );
    let lingered = wait_for(Duration::from_secs(3), || {
        held.lock().unwrap().closed_at.is_some()
    });
    let h = held.lock().unwrap();
    assert!(
        lingered,
        "the mirror's connection is still open 3 s after our FIN"
    );
    let linger = h.closed_at.zip(h.eof_at).map(|(c, e)| c - e);
    // The linger is 1 s; the mirror notices the close within two of its 50 ms writes.
    assert!(
        linger.is_some_and(|l| l <= Duration::from_millis(2500)),
        "closed {linger:?} after our FIN"
    );
    assert_eq!(h.bytes, b"to the mirror too".len());
    drop(h);
    assert_fds_back(&chain.ingress, baseline);
}

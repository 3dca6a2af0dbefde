//! Mirroring (an L4 tee): shadow targets get the client's bytes and EOF; their replies are
//! discarded; a slow or dead mirror never slows or breaks the real session.

mod common;

use std::time::Duration;

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
    assert_eq!(
        metric(&admin, "busway_mirror_dropped_total{service=\"chat\"}"),
        Some(1.0)
    );
    // The mirror that keeps up still gets the whole copy.
    assert!(wait_for(Duration::from_secs(10), || seen
        .lock()
        .unwrap()
        .eof));
    assert_eq!(seen.lock().unwrap().bytes.len(), data.len());
}

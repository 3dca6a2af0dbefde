//! SIGTERM while messages are still queued for a slow upstream: the node hands every one of them
//! over before it exits, within `shutdown_grace`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::grpc::{gateway_toml, up_url, upstream, Gateway};
use common::{connect, wait_for};

const SIGTERM: i32 = 15;
const CLIENTS: usize = 8;
/// Per client: with 8 clients, twice what the upstream's queue and HTTP/2 window hold together,
/// so most of it is still in the node when SIGTERM arrives.
const BYTES: usize = 512 * 1024;

/// Bytes per uuid in the upstream's `data UUID LEN` lines.
fn received(lines: &[String]) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for l in lines {
        let mut f = l.split(' ');
        if let (Some("data"), Some(uuid), Some(n)) = (f.next(), f.next(), f.next()) {
            *per.entry(uuid.to_string()).or_default() += n.parse::<usize>().unwrap_or(0);
        }
    }
    per
}

#[test]
fn sigterm_hands_every_queued_message_to_the_upstream() {
    // 2 ms per message: about 8 MB/s, so the backlog takes a few hundred ms to go.
    let up = upstream(&["--mode", "sink", "--verbose", "--delay-ms", "2"]);
    let toml = gateway_toml(&[up_url(&up)], "", "")
        .replace("shutdown_grace = \"1s\"", "shutdown_grace = \"10s\"");
    let mut gw = Gateway::start_toml(&toml, 1);
    let clients: Vec<_> = (0..CLIENTS).map(|_| connect(&gw.addr())).collect();
    // Attached first: a client still in the listener's backlog at SIGTERM would be refused.
    let uuids: Vec<String> = gw
        .wait_downstreams(CLIENTS)
        .iter()
        .map(|d| d["uuid"].as_str().unwrap_or_default().to_string())
        .collect();
    let data = busway_test_support::backends::pattern(BYTES);
    let writers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let data = data.clone();
            std::thread::spawn(move || {
                c.write_all(&data).expect("write");
                c.shutdown(std::net::Shutdown::Write).expect("half-close");
                c
            })
        })
        .collect();
    let _clients: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let t0 = Instant::now();
    gw.node.signal(SIGTERM);
    let status = gw.node.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        gw.node.stderr()
    );
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{took:?}: beyond shutdown_grace"
    );

    // The node has gone; what the upstream read is all it will ever get.
    let complete = || {
        let got = received(&up.stdout_lines());
        uuids.iter().all(|u| got.get(u) == Some(&BYTES))
    };
    let all = wait_for(Duration::from_secs(5), complete);
    let got = received(&up.stdout_lines());
    assert!(
        all,
        "bytes per client at the upstream, {BYTES} each expected: {got:?}"
    );
    assert_eq!(got.len(), CLIENTS, "{got:?}");
    // And the call ended because the node ended it, not because the connection broke.
    assert!(
        up.stdout_lines()
            .contains(&"call bidirectionalStreaming 1 ended".to_string()),
        "{:?}",
        up.stdout_lines()
            .iter()
            .filter(|l| l.starts_with("call"))
            .collect::<Vec<_>>()
    );
    assert!(
        !gw.node.stderr().contains("may be lost"),
        "{}",
        gw.node.stderr()
    );
}

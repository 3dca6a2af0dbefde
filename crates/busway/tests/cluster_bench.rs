//! The takeover benchmark behind `bench/cluster` (issue 14): 50 silent deaths of the owner in
//! the namespace lab, alternating kill -9, link down and SIGSTOP, each measured from the
//! gateway as the longest time clients went unserved. Ignored by `cargo test`: it takes a few
//! minutes, and its numbers are a report, not a pass or fail.
//!
//! `TAKEOVERS` (default 50), `ADVERT_INTERVAL` (default the contract's 200ms) and
//! `DEAD_AFTER` (default 3) change the run; the gaps are printed as one JSON object on stdout, after a line `RESULT`.

mod common;

use std::time::{Duration, Instant};

use busway_test_support::lab::{arp_lag, longest_gap, Mac};
use common::lan::{available, wait, LanCluster, ANSWER, ASK, SERVICE_PORT};

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;
const KINDS: [&str; 3] = ["kill -9", "link down", "SIGSTOP"];

#[test]
#[ignore = "a benchmark: run by bench/cluster"]
fn takeovers() {
    if !available() {
        return;
    }
    let n: usize = std::env::var("TAKEOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let interval: &'static str = Box::leak(
        std::env::var("ADVERT_INTERVAL")
            .unwrap_or_else(|_| "200ms".into())
            .into_boxed_str(),
    );
    let mut c = LanCluster::new("bn", &[300, 200, 100]);
    c.advert_interval = interval;
    c.dead_after = std::env::var("DEAD_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for i in 1..=3 {
        c.start(i);
    }
    let mut gaps: Vec<(usize, Duration)> = Vec::new();
    // From m2's taking the address to the gateway's ARP entry giving m2's MAC (2 ms samples).
    let mut lags: Vec<Duration> = Vec::new();
    let mut moves: Vec<Duration> = Vec::new();
    let mac2 = c.lab.mac(2);
    for round in 0..n {
        assert!(
            c.wait_sole_holder(1, Duration::from_secs(10)),
            "round {round}: m1 does not hold the address alone: {:?}",
            c.lab.holders()
        );
        // Let the gateway's connects settle on m1, and vary the phase of the fault against
        // the advert timer.
        std::thread::sleep(Duration::from_millis(600 + 37 * (round as u64 % 7)));
        let kind = round % KINDS.len();
        let prober = c
            .lab
            .probe(SERVICE_PORT, Duration::from_millis(20), ASK, ANSWER);
        let (arp, held) = (c.lab.watch_arp(), c.lab.watch_holder(2));
        std::thread::sleep(Duration::from_millis(200));
        let at = Instant::now();
        match kind {
            0 => c.proc(1).signal(9),
            1 => c.lab.link(1, false),
            _ => c.proc(1).signal(SIGSTOP),
        }
        wait(Duration::from_secs(5), || {
            c.lab.holds(2) && at.elapsed() > Duration::from_millis(1600)
        });
        let log = prober.finish();
        let gap = longest_gap(&log, at).unwrap_or(Duration::from_secs(60));
        let (moved, lag) = after_fault(&held.finish(), &arp.finish(), mac2, at);
        eprintln!(
            "round {round:2} {:9}: {:4} ms, m2 held the address after {} ms, ARP followed {} ms later",
            KINDS[kind],
            gap.as_millis(),
            moved.as_millis(),
            lag.as_millis()
        );
        gaps.push((kind, gap));
        lags.push(lag);
        moves.push(moved);
        match kind {
            0 => {
                c.kill(1);
                c.start(1);
            }
            1 => c.lab.link(1, true),
            _ => c.proc(1).signal(SIGCONT),
        }
    }
    report(
        format!(
            "\"advert_interval\": \"{interval}\", \"dead_after\": {}",
            c.dead_after
        ),
        &gaps,
        moves,
        lags,
    );
}

/// From the fault at `at`: when m2 first held the address (the takeover itself, sampled every
/// 2 ms in m2's namespace, whichever program moved it: finer than the prober's connects), and
/// how long after that the gateway's ARP entry gave m2's MAC; 60 s for what never happened.
fn after_fault(
    held: &[(Instant, bool)],
    arp: &[(Instant, Option<Mac>)],
    mac2: Mac,
    at: Instant,
) -> (Duration, Duration) {
    let never = Duration::from_secs(60);
    let moved = held
        .iter()
        .find(|(t, h)| *h && *t >= at)
        .map_or(never, |(t, _)| *t - at);
    (moved, arp_lag(held, arp, mac2, at).unwrap_or(never))
}

/// Prints the run's JSON after `RESULT`: `head`, the gaps of all faults and of each kind, the
/// times until m2 held the address, and the ARP lags.
fn report(head: String, gaps: &[(usize, Duration)], moves: Vec<Duration>, lags: Vec<Duration>) {
    let mut out = vec![head];
    out.push(format!(
        "\"all\": {}",
        stats(gaps.iter().map(|g| g.1).collect())
    ));
    for (k, name) in KINDS.iter().enumerate() {
        let these = gaps.iter().filter(|g| g.0 == k).map(|g| g.1).collect();
        out.push(format!("\"{name}\": {}", stats(these)));
    }
    out.push(format!("\"address_moved\": {}", stats(moves)));
    out.push(format!("\"arp_followed\": {}", stats(lags)));
    println!("RESULT\n{{{}}}", out.join(", "));
}

/// `{"n", "p50_ms", "p99_ms", "max_ms"}`, nearest-rank percentiles.
fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let pick = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).map_or(0, |d| d.as_millis())
    };
    format!(
        "{{\"n\": {}, \"p50_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}}}",
        v.len(),
        pick(0.50),
        pick(0.99),
        v.last().map_or(0, |d| d.as_millis())
    )
}

/// The same lab and prober with keepalived (VRRP) moving the address instead, and busway
/// serving on every member without `[cluster]`. The faults alternate as busway's do: kill -9
/// and SIGSTOP of keepalived's VRRP child (the process that sends the adverts; its parent
/// respawns it after a kill -9), and the owner's link set down. `KEEPALIVED_ADVERT` is its `advert_int` in seconds (default
/// 1, its default; below 1 it speaks VRRPv3, which takes centiseconds).
#[test]
#[ignore = "a benchmark: run by bench/cluster with KEEPALIVED=1"]
fn keepalived_takeovers() {
    if !available() {
        return;
    }
    let n: usize = std::env::var("TAKEOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let advert = std::env::var("KEEPALIVED_ADVERT").unwrap_or_else(|_| "1".into());
    let mut c = LanCluster::new("ka", &[150, 100, 50]);
    c.without_cluster = true;
    let mut vrrp = Vec::new();
    for i in 1..=3 {
        c.start(i);
        let v3 = advert.parse::<f64>().is_ok_and(|a| a < 1.0);
        let conf = format!(
            "global_defs {{\n  router_id m{i}\n  {}\n}}\nvrrp_instance lab {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {}\n  advert_int {advert}\n  virtual_ipaddress {{\n    198.18.0.100/24 dev eth0\n  }}\n}}\n",
            // VRRPv2 counts whole seconds; v3 centiseconds.
            if v3 { "vrrp_version 3" } else { "" },
            c.priorities[i - 1],
        );
        let file = c.dir.write(&format!("ka{i}.conf"), &conf);
        let pid = |n: &str| c.dir.path(&format!("ka{i}-{n}.pid")).display().to_string();
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &c.lab.member(i),
                "keepalived",
                "-n",
                "-P",
                "-f",
            ])
            .arg(&file)
            .args(["-p", &pid("main"), "-r", &pid("vrrp"), "-c", &pid("check")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("keepalived (apt-get install keepalived)");
        vrrp.push(child);
    }
    let mut gaps: Vec<(usize, Duration)> = Vec::new();
    let mut lags = Vec::new();
    let mut moves = Vec::new();
    let mac2 = c.lab.mac(2);
    // keepalived's VRRP child sends the adverts; its parent respawns it after a kill -9.
    let vrrp_pid = || {
        std::fs::read_to_string(c.dir.path("ka1-vrrp.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .expect("keepalived's VRRP child pid")
    };
    let signal = |pid: i32, sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    };
    for round in 0..n {
        assert!(
            c.wait_sole_holder(1, Duration::from_secs(20)),
            "round {round}: {:?}",
            c.lab.holders()
        );
        std::thread::sleep(Duration::from_millis(1500 + 137 * (round as u64 % 7)));
        let kind = round % KINDS.len();
        let prober = c
            .lab
            .probe(SERVICE_PORT, Duration::from_millis(20), ASK, ANSWER);
        let (arp, held) = (c.lab.watch_arp(), c.lab.watch_holder(2));
        std::thread::sleep(Duration::from_millis(200));
        let at = Instant::now();
        let child = vrrp_pid();
        match kind {
            0 => signal(child, "-9"),
            1 => c.lab.link(1, false),
            _ => signal(child, "-STOP"),
        }
        wait(Duration::from_secs(10), || {
            c.lab.holds(2) && at.elapsed() > Duration::from_secs(5)
        });
        let log = prober.finish();
        let gap = longest_gap(&log, at).unwrap_or(Duration::from_secs(60));
        let (moved, lag) = after_fault(&held.finish(), &arp.finish(), mac2, at);
        eprintln!(
            "keepalived round {round:2} {:9}: {:4} ms, m2 held the address after {} ms, ARP followed {} ms later",
            KINDS[kind],
            gap.as_millis(),
            moved.as_millis(),
            lag.as_millis()
        );
        gaps.push((kind, gap));
        lags.push(lag);
        moves.push(moved);
        match kind {
            0 => {}
            1 => c.lab.link(1, true),
            _ => signal(child, "-CONT"),
        }
    }
    for mut v in vrrp {
        // SIGTERM by pid: keepalived stops its child and removes its address.
        let _ = std::process::Command::new("kill")
            .arg(v.id().to_string())
            .status();
        let _ = v.wait();
    }
    report(
        format!("\"keepalived_advert_int\": \"{advert}\""),
        &gaps,
        moves,
        lags,
    );
}

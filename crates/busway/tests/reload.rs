//! Issue 11, item 4: a reload applies every key it can (here `admin.listen`, `[dns]`, a
//! Cloudbus segment's sections) and rejects, naming the key, what it cannot; `POST /v1/reload`
//! does what SIGHUP does and answers with the outcome.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use busway_test_support::dns::Dnsmasq;
use common::*;

const TOKEN: &str = "admin-token-for-tests";

/// A direct (L4) node `name` with `chat` in front of `backend`, its admin API at `admin`.
fn direct_toml(name: &str, admin: &str, backend: &str, extra: &str) -> String {
    format!(
        r#"
[node]
name = "{name}"
[admin]
listen = "{admin}"
token = "{TOKEN}"
{extra}
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
backends = ["{backend}"]
"#
    )
}

/// Starts a direct node `name` in front of `backend` from a file in `dir`; returns the file
/// (to rewrite before a reload) and the node.
fn start_direct(dir: &TempDir, name: &str, backend: &backends::Backend) -> (PathBuf, Proc) {
    let cfg = direct_toml(name, "tcp://127.0.0.1:0", &backend.url(), "");
    let path = dir.write("n.toml", &cfg);
    let node = Proc::start(&["run", "-c", path.to_str().unwrap()]);
    (path, node)
}

/// Waits until `busway_config_reloads_total{result}` reaches `n` at `admin`.
fn wait_reloads(admin: &str, result: &str, n: f64) -> bool {
    let series = format!("busway_config_reloads_total{{result=\"{result}\"}}");
    wait_for(Duration::from_secs(5), || metric(admin, &series) == Some(n))
}

fn post_reload(admin: &str, token: Option<&str>) -> http::Answer {
    http::request("POST", admin, "/v1/reload", token, b"")
}

#[test]
fn sighup_moves_the_admin_api_and_a_bind_failure_keeps_the_old_one() {
    let backend = backends::echo();
    let dir = TempDir::new("reload-admin");
    let (path, node) = start_direct(&dir, "n", &backend);
    let old = node.addr("admin");

    // A port something else holds: the reload is rejected and the old listener keeps serving.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    std::fs::write(
        &path,
        direct_toml("n", &format!("tcp://{taken}"), &backend.url(), ""),
    )
    .unwrap();
    node.signal(1);
    assert!(wait_reloads(&old, "error", 1.0), "{}", node.stderr());
    // The log is read by another thread, a little behind the metric.
    assert!(
        wait_for(Duration::from_secs(2), || node.stderr().contains(&taken)),
        "{}",
        node.stderr()
    );
    assert_eq!(http::get(&old, "/healthz").status, 200);

    let new = backends::closed_port();
    std::fs::write(
        &path,
        direct_toml("n", &format!("tcp://{new}"), &backend.url(), ""),
    )
    .unwrap();
    node.signal(1);
    assert!(
        wait_for(Duration::from_secs(5), || TcpStream::connect(&new).is_ok()),
        "the new admin address does not answer: {}",
        node.stderr()
    );
    assert_eq!(http::get(&new, "/healthz").status, 200);
    assert!(wait_reloads(&new, "ok", 1.0));
    assert!(
        wait_for(Duration::from_secs(2), || TcpStream::connect(&old).is_err()),
        "the old admin address still answers"
    );
    // Logged, not printed: stdout carries the start-up lines only (CONTRACT section 1).
    assert!(
        wait_for(Duration::from_secs(2), || node.stderr().contains(&new)),
        "{}",
        node.stderr()
    );
    assert!(node.stdout_lines().is_empty(), "{:?}", node.stdout_lines());
    let mut c = connect(&node.addr("chat"));
    roundtrip(&mut c, b"still serving");
}

#[test]
fn a_change_that_needs_a_restart_rejects_the_whole_reload() {
    let backend = backends::echo();
    let dir = TempDir::new("reload-restart");
    let (path, node) = start_direct(&dir, "first", &backend);
    let admin = node.addr("admin");
    let mut c = connect(&node.addr("chat"));
    roundtrip(&mut c, b"before");
    // A renamed node with an added service: neither is applied.
    let port = backends::closed_port();
    let added = format!(
        "[[service]]\nname = \"extra\"\nlisten = [\"tcp://{port}\"]\nbackends = [\"{}\"]\n",
        backend.url()
    );
    let renamed = direct_toml("second", "tcp://127.0.0.1:0", &backend.url(), "") + &added;
    std::fs::write(&path, &renamed).unwrap();
    node.signal(1);
    assert!(wait_reloads(&admin, "error", 1.0), "{}", node.stderr());
    // The counter can be ahead of the log line: wait for the line.
    assert!(
        wait_for(Duration::from_secs(3), || {
            let log = node.stderr();
            log.contains("node.name") && log.contains("requires a restart")
        }),
        "{}",
        node.stderr()
    );
    assert!(
        TcpStream::connect(&port).is_err(),
        "a rejected reload added a service"
    );
    roundtrip(&mut c, b"old configuration");
    let mut c2 = connect(&node.addr("chat"));
    roundtrip(&mut c2, b"new session, old configuration");
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"ok\"}"),
        None
    );

    // The same file with the old name is applied.
    let kept = direct_toml("first", "tcp://127.0.0.1:0", &backend.url(), "") + &added;
    std::fs::write(&path, kept).unwrap();
    node.signal(1);
    assert!(wait_reloads(&admin, "ok", 1.0), "{}", node.stderr());
    let mut c3 = connect(&port);
    roundtrip(&mut c3, b"added");
}

#[test]
fn post_v1_reload_needs_the_token_and_answers_with_the_outcome() {
    let backend = backends::echo();
    let dir = TempDir::new("reload-api");
    let (path, node) = start_direct(&dir, "n", &backend);
    let admin = node.addr("admin");

    let r = post_reload(&admin, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"ok\"}"),
        None,
        "a reload without the token was applied"
    );

    let port = backends::closed_port();
    let added = direct_toml("n", "tcp://127.0.0.1:0", &backend.url(), "")
        + &format!(
            "[[service]]\nname = \"extra\"\nlisten = [\"tcp://{port}\"]\nbackends = [\"{}\"]\n",
            backend.url()
        );
    std::fs::write(&path, &added).unwrap();
    let r = post_reload(&admin, Some(TOKEN));
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"result":"ok"}"#));
    // Synchronous: applied when the answer comes.
    let mut c = connect(&port);
    roundtrip(&mut c, b"added by the api");

    // An invalid file: 400 naming file, line and key.
    std::fs::write(&path, "[node]\nname = 5\n").unwrap();
    let r = post_reload(&admin, Some(TOKEN));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("\"error\"") && r.body.contains("n.toml:2") && r.body.contains("node.name"),
        "{}",
        r.body
    );

    // A valid file the running node cannot apply: 409 naming the key.
    std::fs::write(&path, added.replace("name = \"n\"", "name = \"m\"")).unwrap();
    let r = post_reload(&admin, Some(TOKEN));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("node.name"), "{}", r.body);
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"error\"}"),
        Some(2.0)
    );
    roundtrip(&mut c, b"still there");

    // Concurrent reloads are applied one after the other, each answered.
    std::fs::write(&path, &added).unwrap();
    let answers: Vec<_> = (0..4)
        .map(|_| {
            let a = admin.clone();
            std::thread::spawn(move || post_reload(&a, Some(TOKEN)).status)
        })
        .collect();
    for a in answers {
        assert_eq!(a.join().unwrap(), 200);
    }
    assert_eq!(
        metric(&admin, "busway_config_reloads_total{result=\"ok\"}"),
        Some(5.0)
    );

    // A new token is in force once the reload that sets it is answered.
    std::fs::write(&path, added.replace(TOKEN, "a-rotated-admin-token")).unwrap();
    assert_eq!(post_reload(&admin, Some(TOKEN)).status, 200);
    assert_eq!(post_reload(&admin, Some(TOKEN)).status, 401);
    assert_eq!(
        post_reload(&admin, Some("a-rotated-admin-token")).status,
        200
    );
}

/// With a floor of an hour on every answer, only the reload can make the node ask again.
#[test]
fn a_dns_change_resolves_every_name_again_through_the_new_servers() {
    let dir = TempDir::new("reload-dns");
    let other = TempDir::new("reload-dns-2");
    let echoes = backends::echo_on_loopbacks(&[4, 5]);
    let port = echoes[0].addr.rsplit(':').next().unwrap().to_string();
    let dns_a = Dnsmasq::start(&dir, "127.0.0.4 moving.test\n", &[]);
    let dns_b = Dnsmasq::start(&other, "127.0.0.5 moving.test\n", &[]);
    let cfg = |dns: &Dnsmasq| {
        direct_toml(
            "n",
            "tcp://127.0.0.1:0",
            &format!("tcp://moving.test:{port}"),
            &format!("[dns]\nservers = [\"{}\"]\nmin_ttl = \"1h\"\n", dns.addr),
        )
    };
    let path = dir.write("n.toml", &cfg(&dns_a));
    let node = Proc::start(&["run", "-c", path.to_str().unwrap()]);
    let admin = node.addr("admin");
    let mut c = connect(&node.addr("chat"));
    roundtrip(&mut c, b"through a");
    assert_eq!((echoes[0].accepted(), echoes[1].accepted()), (1, 0));

    std::fs::write(&path, cfg(&dns_b)).unwrap();
    node.signal(1);
    assert!(wait_reloads(&admin, "ok", 1.0), "{}", node.stderr());
    for i in 0..3 {
        let mut n = connect(&node.addr("chat"));
        roundtrip(&mut n, format!("through b {i}").as_bytes());
    }
    assert_eq!((echoes[0].accepted(), echoes[1].accepted()), (1, 3));
    let services = http::request("GET", &admin, "/v1/services", Some(TOKEN), b"").body;
    assert!(
        services.contains(&format!("tcp://127.0.0.5:{port}"))
            && !services.contains(&format!("tcp://127.0.0.4:{port}")),
        "{services}"
    );
    // The session opened before the change was not touched.
    roundtrip(&mut c, b"still on a");
}

/// A segment whose section is renamed keeps its `bind` (no second bind of a held address) and
/// carries new sessions to the renamed section's backend: the INI file is read again in its
/// own format.
#[test]
fn sighup_rereads_a_cloudbus_segment_file() {
    let first = backends::echo();
    let second = backends::echo();
    let dir = TempDir::new("reload-ini");
    let bind = backends::closed_port();
    let ini = |section: &str, backend: &backends::Backend| {
        format!(
            "[Cloudbus]\n[{section}]\nbind=tcp://{bind}\nserver={}\n",
            backend.url()
        )
    };
    let seg = dir.write("segment.ini", &ini("Echo", &first));
    let segment = Proc::start(&["segment", "-f", seg.to_str().unwrap()]);
    let ctl = dir.write(
        "controller.ini",
        &format!(
            "[Cloudbus]\n[Front]\nbind=tcp://127.0.0.1:0\nserver={}\n",
            segment.url("bus")
        ),
    );
    let controller = Proc::start(&["controller", "-f", ctl.to_str().unwrap()]);
    let mut c = connect(&controller.addr("Front"));
    roundtrip(&mut c, b"to the first");
    assert_eq!(first.accepted(), 1);

    std::fs::write(&seg, ini("Renamed", &second)).unwrap();
    segment.signal(1);
    assert!(
        wait_for(Duration::from_secs(5), || segment
            .stderr()
            .contains("configuration reloaded")),
        "{}",
        segment.stderr()
    );
    let mut c2 = connect(&controller.addr("Front"));
    roundtrip(&mut c2, b"to the second");
    assert_eq!((first.accepted(), second.accepted()), (1, 1));
    roundtrip(&mut c, b"the first session stays");
}

//! The session limits of CONTRACT section 10 on real processes: `max_sessions` (a listener's
//! clients, and bus sessions at an egress), `max_sessions_per_client` and
//! `new_sessions_per_client`. A limit that is hit refuses only the new session: the client reads
//! EOF without a byte within 1 s, the backend sees no connection for it, the refusal is counted
//! and logged at most once per second, and open sessions go on.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

/// A direct (L4) node whose `chat` listens on loopback in front of `backend`, with `limits`
/// (TOML lines of the service); returns its file (to rewrite before a reload) and the node.
fn direct(dir: &TempDir, backend: &backends::Backend, limits: &str) -> (PathBuf, Proc) {
    let path = dir.write("n.toml", &direct_toml(backend, limits));
    let node = Proc::start(&["run", "-c", path.to_str().unwrap()]);
    (path, node)
}

fn direct_toml(backend: &backends::Backend, limits: &str) -> String {
    format!(
        r#"
[node]
name = "direct"
shutdown_grace = "1s"
[admin]
listen = "tcp://127.0.0.1:0"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
backends = ["{}"]
{limits}
"#,
        backend.url()
    )
}

/// Connects to `addr` from the loopback address `source` (the whole 127/8 is loopback, so
/// `127.0.0.2` is another client address on the same machine).
fn connect_from(source: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let to: SocketAddr = addr.parse().expect("addr");
    let from: SocketAddr = format!("{source}:0").parse().expect("source");
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&from.into()).expect("bind the source address");
    s.connect(&to.into())
        .unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Asserts that `c` reads EOF without a single byte within 1 s.
fn assert_refused(c: &mut TcpStream) {
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("a refused session got {n} bytes"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("a refused session was not closed within 2 s")
        }
        // A reset is a close too, but the contract's is an orderly one.
        Err(e) => panic!("a refused session ended with {e}, not EOF"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        start.elapsed()
    );
}

/// Waits until `series` at `admin` is `value`.
fn wait_metric(admin: &str, series: &str, value: f64) {
    let ok = wait_for(Duration::from_secs(5), || {
        metric(admin, series) == Some(value)
    });
    assert!(
        ok,
        "{series} is {:?}, not {value}:\n{}",
        metric(admin, series),
        http::get(admin, "/metrics").body
    );
}

fn rejections(limit: &str) -> String {
    format!("busway_limit_rejections_total{{limit=\"{limit}\"}}")
}

const REFUSED: &str = "busway_sessions_total{service=\"chat\",outcome=\"refused\"}";
const ACTIVE: &str = "busway_sessions_active{service=\"chat\"}";

/// Lines of `log` saying that `limit` refused a session.
fn refusal_lines(log: &str, limit: &str) -> usize {
    let said = format!("session refused: {limit} reached");
    log.lines().filter(|l| l.contains(&said)).count()
}

/// Waits until `node` logged at least `n` lines saying that `limit` refused a session (its
/// stderr is read by another thread, a little behind), then gives it a moment to log more.
fn wait_refusal_lines(node: &Proc, limit: &str, n: usize) -> usize {
    wait_for(Duration::from_secs(3), || {
        refusal_lines(&node.stderr(), limit) >= n
    });
    std::thread::sleep(Duration::from_millis(100));
    refusal_lines(&node.stderr(), limit)
}

/// Waits (briefly) and checks the backend accepted exactly `n` connections.
fn assert_backend_saw(backend: &backends::Backend, n: usize) {
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(backend.accepted(), n, "connections the backend accepted");
}

#[test]
fn every_limit_is_shown_at_zero_from_the_start() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-zero");
    let (_, node) = direct(&dir, &backend, "");
    let admin = node.addr("admin");
    for limit in [
        "max_sessions",
        "max_sessions_per_client",
        "new_sessions_per_client",
        "max_transports",
    ] {
        assert_eq!(metric(&admin, &rejections(limit)), Some(0.0), "{limit}");
    }
}

#[test]
fn max_sessions_refuses_only_the_new_session() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-max");
    let (_, node) = direct(&dir, &backend, "max_sessions = 2");
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    let mut open: Vec<_> = (0..2).map(|_| connect(&addr)).collect();
    for c in &mut open {
        roundtrip(c, b"first");
    }
    // A third client, from the same address or another, is refused.
    let mut third = connect(&addr);
    assert_refused(&mut third);
    let mut other = connect_from("127.0.0.2", &addr);
    assert_refused(&mut other);
    assert_backend_saw(&backend, 2);
    wait_metric(&admin, REFUSED, 2.0);
    wait_metric(&admin, &rejections("max_sessions"), 2.0);
    assert_eq!(metric(&admin, ACTIVE), Some(2.0));
    // The open sessions go on.
    for c in &mut open {
        roundtrip(c, b"still here");
    }
    // Once one ends there is room again.
    drop(open.pop());
    wait_metric(&admin, ACTIVE, 1.0);
    let mut again = connect(&addr);
    roundtrip(&mut again, b"room again");
    assert_eq!(backend.accepted(), 3);
    assert!(
        wait_refusal_lines(&node, "max_sessions", 1) >= 1,
        "{}",
        node.stderr()
    );
}

#[test]
fn max_sessions_per_client_refuses_that_client_only() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-per-client");
    let (_, node) = direct(&dir, &backend, "max_sessions_per_client = 2");
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    let mut open: Vec<_> = (0..2).map(|_| connect(&addr)).collect();
    for c in &mut open {
        roundtrip(c, b"mine");
    }
    let mut third = connect(&addr);
    assert_refused(&mut third);
    assert_backend_saw(&backend, 2);
    // Another address has its own two.
    let mut others: Vec<_> = (0..2).map(|_| connect_from("127.0.0.2", &addr)).collect();
    for c in &mut others {
        roundtrip(c, b"theirs");
    }
    assert_refused(&mut connect_from("127.0.0.2", &addr));
    wait_metric(&admin, REFUSED, 2.0);
    wait_metric(&admin, &rejections("max_sessions_per_client"), 2.0);
    assert_eq!(metric(&admin, &rejections("max_sessions")), Some(0.0));
    for c in open.iter_mut().chain(&mut others) {
        roundtrip(c, b"still here");
    }
    // A session of the first client ends: it may open one again.
    drop(open.pop());
    wait_metric(&admin, ACTIVE, 3.0);
    roundtrip(&mut connect(&addr), b"room again");
    assert_eq!(backend.accepted(), 5);
}

#[test]
fn new_sessions_per_client_is_a_bucket_that_refills_in_a_second() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-rate");
    let (_, node) = direct(&dir, &backend, "new_sessions_per_client = \"3/s\"");
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    // A burst of 3, each session ended at once: the bucket counts new sessions, not open ones.
    let start = Instant::now();
    for _ in 0..3 {
        roundtrip(&mut connect(&addr), b"burst");
    }
    // The last token was taken before this.
    let emptied = Instant::now();
    let mut fourth = connect(&addr);
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "too slow to test a rate of 3/s: {:?}",
        start.elapsed()
    );
    assert_refused(&mut fourth);
    assert_backend_saw(&backend, 3);
    // Another address has a bucket of its own.
    roundtrip(&mut connect_from("127.0.0.2", &addr), b"other");
    wait_metric(&admin, &rejections("new_sessions_per_client"), 1.0);
    wait_metric(&admin, REFUSED, 1.0);
    // A second after its last take the bucket is full again: three more, then a refusal.
    std::thread::sleep(Duration::from_millis(1050).saturating_sub(emptied.elapsed()));
    let refill = Instant::now();
    for _ in 0..3 {
        roundtrip(&mut connect(&addr), b"refilled");
    }
    let mut over = connect(&addr);
    if refill.elapsed() < Duration::from_millis(300) {
        assert_refused(&mut over);
        wait_metric(&admin, &rejections("new_sessions_per_client"), 2.0);
    }
    assert_eq!(backend.accepted(), 7);
}

#[test]
fn a_burst_of_refusals_is_logged_at_most_once_per_second() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-log");
    let (_, node) = direct(&dir, &backend, "max_sessions = 1");
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    let mut open = connect(&addr);
    roundtrip(&mut open, b"held");
    let start = Instant::now();
    for _ in 0..50 {
        assert_refused(&mut connect(&addr));
    }
    let took = start.elapsed();
    wait_metric(&admin, &rejections("max_sessions"), 50.0);
    wait_metric(&admin, REFUSED, 50.0);
    let lines = wait_refusal_lines(&node, "max_sessions", 1);
    let most = 1 + took.as_secs() as usize;
    assert!(
        (1..=most).contains(&lines),
        "{lines} lines for 50 refusals in {took:?}:\n{}",
        node.stderr()
    );
    // The next line, a second later, says how many were left out.
    std::thread::sleep(Duration::from_millis(1100));
    assert_refused(&mut connect(&addr));
    assert_eq!(
        wait_refusal_lines(&node, "max_sessions", lines + 1),
        lines + 1,
        "{}",
        node.stderr()
    );
    let last = node
        .stderr()
        .lines()
        .rfind(|l| l.contains("session refused: max_sessions reached"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        last.contains("limit=max_sessions") && last.contains("service=chat"),
        "{last}"
    );
    assert!(!last.contains("suppressed=0"), "{last}");
    roundtrip(&mut open, b"still held");
    assert_backend_saw(&backend, 1);
}

#[test]
fn max_sessions_at_an_egress_refuses_bus_sessions() {
    let backend = backends::echo();
    // Per-client limits do not apply to sessions arriving over the bus: both of the ingress's
    // sessions get through, the third is refused by max_sessions.
    let egress = egress_toml(
        &backend.url(),
        "max_sessions = 2\nmax_sessions_per_client = 1\nnew_sessions_per_client = \"1/s\"",
    );
    let chain = Chain::with(&egress, |bus| ingress_toml(bus, ""));
    let (e_admin, i_admin) = (chain.egress.addr("admin"), chain.ingress.addr("admin"));
    let mut open: Vec<_> = (0..2).map(|_| chain.client()).collect();
    for c in &mut open {
        roundtrip(c, b"over the bus");
    }
    let mut third = chain.client();
    assert_refused(&mut third);
    assert_backend_saw(&backend, 2);
    wait_metric(&e_admin, &rejections("max_sessions"), 1.0);
    wait_metric(&e_admin, REFUSED, 1.0);
    // The ingress saw its stream refused, and counts the session refused too.
    wait_metric(&i_admin, REFUSED, 1.0);
    assert_eq!(metric(&i_admin, &rejections("max_sessions")), Some(0.0));
    for c in &mut open {
        roundtrip(c, b"still here");
    }
    // One line, naming the client and the ingress it came through.
    let lines = wait_refusal_lines(&chain.egress, "max_sessions", 1);
    let log = chain.egress.stderr();
    assert_eq!(lines, 1, "{log}");
    assert!(log.contains(" via ingress"), "{log}");
    // The transport is fine: once a session ends, the next one goes through it.
    drop(open.pop());
    wait_metric(&e_admin, ACTIVE, 1.0);
    roundtrip(&mut chain.client(), b"room again");
    wait_peer_up(&i_admin);
}

#[test]
fn a_reload_applies_changed_limits_to_new_sessions() {
    let backend = backends::echo();
    let dir = TempDir::new("limits-reload");
    let (path, node) = direct(&dir, &backend, "max_sessions = 1");
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    let mut first = connect(&addr);
    roundtrip(&mut first, b"one");
    assert_refused(&mut connect(&addr));
    let reload = |limits: &str, n: f64| {
        let cfg = direct_toml(&backend, limits);
        std::fs::write(&path, cfg).expect("rewrite");
        node.signal(1); // SIGHUP
        wait_metric(&admin, "busway_config_reloads_total{result=\"ok\"}", n);
    };
    reload("max_sessions = 3", 1.0);
    let mut more: Vec<_> = (0..2).map(|_| connect(&addr)).collect();
    for c in &mut more {
        roundtrip(c, b"raised");
    }
    assert_refused(&mut connect(&addr));
    // Lowered below what is open: nothing open is closed, new sessions wait for room.
    reload("max_sessions = 1", 2.0);
    roundtrip(&mut first, b"kept");
    for c in &mut more {
        roundtrip(c, b"kept");
    }
    assert_refused(&mut connect(&addr));
    drop(more);
    wait_metric(&admin, ACTIVE, 1.0);
    assert_refused(&mut connect(&addr));
    drop(first);
    wait_metric(&admin, ACTIVE, 0.0);
    roundtrip(&mut connect(&addr), b"room");
    wait_metric(&admin, &rejections("max_sessions"), 4.0);
}

#[test]
fn a_slowloris_from_one_address_does_not_stop_another() {
    // 1,000 silent connections and their 10 backend connections live in this process.
    rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    let backend = backends::echo();
    let dir = TempDir::new("limits-slowloris");
    let (_, node) = direct(
        &dir,
        &backend,
        "max_sessions = 100\nmax_sessions_per_client = 10",
    );
    let (addr, admin) = (node.addr("chat"), node.addr("admin"));
    // Connected from a few threads at once, and never a byte sent.
    let silent: Vec<TcpStream> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..250).map(|_| connect(&addr)).collect::<Vec<_>>()))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("connector"))
            .collect()
    });
    assert_eq!(silent.len(), 1000);
    let start = Instant::now();
    let mut legit = connect_from("127.0.0.2", &addr);
    roundtrip(&mut legit, b"let me in");
    // Well within a second on a quiet machine; the margin is for a busy shared one.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the legitimate client waited {:?}",
        start.elapsed()
    );
    wait_metric(&admin, &rejections("max_sessions_per_client"), 990.0);
    wait_metric(&admin, REFUSED, 990.0);
    wait_metric(&admin, ACTIVE, 11.0);
    assert_eq!(backend.accepted(), 11);
    // The refused ones were closed; ten are held open, silent.
    let mut closed = 0;
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        if matches!(c.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 990);
    roundtrip(&mut legit, b"still in");
    let lines = wait_refusal_lines(&node, "max_sessions_per_client", 1);
    assert!((1..=3).contains(&lines), "{}", node.stderr());
}

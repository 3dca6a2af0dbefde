//! The status page at `GET /` (CONTRACT section 8), in a real browser. Headless Chromium, run by
//! `scripts/chromium-headless` (which keeps it off the network), loads the page from real nodes,
//! and the DOM it dumps must show what the API shows: the open sessions, their service, the
//! peer, a gRPC gateway's upstream and downstream. With `admin.token` set the page must ask for
//! the token and show nothing else until it has the right one. Text that a peer chose must come
//! out as text, never as markup. Plus the paging of `/v1/sessions` the page relies on.
//!
//! Chromium is required, not optional: without it these tests fail, naming the package.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use busway_proto::{Config, OpenParams};
use common::grpc::{up_url, upstream, Gateway};
use common::peer::FakePeer;
use common::*;
use serde_json::Value;

const TOKEN: &str = "page-test-token-8d2f";

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chromium-headless")
}

/// Runs the helper and returns its stdout; panics with Chromium's stderr if it fails.
fn chromium(args: &[&str]) -> String {
    let out = Command::new(helper())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", helper().display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(127) {
        panic!(
            "the status page tests drive headless Chromium, and none is installed: \
             apt-get install chromium (Debian's package `chromium`; .ci/run installs it)\n{stderr}"
        );
    }
    assert!(
        out.status.success(),
        "chromium-headless {args:?}: {}\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM after 5 s of page time: the first load and two refreshes.
fn page_dom(url: &str) -> String {
    chromium(&["dom", url])
}

/// A screenshot of `url`, saved in `dir` and copied to `$BUSWAY_SCREENSHOT_DIR` when that is set.
fn screenshot(dir: &TempDir, name: &str, url: &str) -> PathBuf {
    let png = dir.path(name);
    chromium(&["screenshot", png.to_str().expect("utf-8 path"), url]);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    // A blank window compresses to a few KiB; tables of text do not.
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "not a screenshot of a page with data: {} bytes",
        bytes.len()
    );
    if let Some(d) = std::env::var_os("BUSWAY_SCREENSHOT_DIR") {
        std::fs::create_dir_all(&d).expect("create BUSWAY_SCREENSHOT_DIR");
        std::fs::copy(&png, Path::new(&d).join(name)).expect("copy the screenshot");
    }
    png
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The session whose client is `c`, as `admin` lists it: (id, client as listed).
fn session_of(admin: &str, token: Option<&str>, c: &TcpStream) -> (String, String) {
    let local = c.local_addr().expect("local addr").to_string();
    let list = json(&http::request("GET", admin, "/v1/sessions", token, b"").body);
    let s = list
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|s| s["client"].as_str().is_some_and(|a| a.contains(&local)))
        })
        .unwrap_or_else(|| panic!("no session from {local}: {list}"));
    (
        s["id"].as_str().expect("id").to_string(),
        s["client"].as_str().expect("client").to_string(),
    )
}

/// `GET path` with its response head, which `http::get` does not keep: (status, head, body).
fn get_with_head(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[test]
fn the_page_shows_services_the_peer_and_the_open_sessions() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let mut older = chain.client();
    roundtrip(&mut older, b"the first client");
    // Ages are counted in milliseconds: this keeps the two sessions in a known order.
    std::thread::sleep(Duration::from_millis(20));
    let mut newer = chain.client();
    roundtrip(&mut newer, b"the second");
    let admin = chain.ingress.addr("admin");
    let (older_id, older_client) = session_of(&admin, None, &older);
    let (newer_id, newer_client) = session_of(&admin, None, &newer);
    let url = format!("http://{admin}/");

    let dom = page_dom(&url);
    assert!(dom.contains(r#"<body data-state="ok""#), "{dom}");
    for (what, text) in [
        ("the older session", older_id.as_str()),
        ("the newer session", newer_id.as_str()),
        ("the older client", older_client.as_str()),
        ("the newer client", newer_client.as_str()),
        ("the service", ">chat<"),
        ("the peer's node name", ">egress<"),
        ("the target", chain.egress.url("bus").as_str()),
        (
            "the open sessions, from /metrics",
            "<dt>Sessions open</dt><dd class=\"value\">2</dd>",
        ),
        ("the sessions' total", "1\u{2013}2 of 2"),
    ] {
        assert!(
            dom.contains(text),
            "{what} ({text}) is not on the page:\n{dom}"
        );
    }

    // A page of one: the youngest session only, and still the total.
    let one = page_dom(&format!("{url}?limit=1"));
    assert!(one.contains(&newer_id), "{one}");
    assert!(!one.contains(&older_id), "{one}");
    assert!(one.contains("1\u{2013}1 of 2"), "{one}");

    // The egress lists the same sessions, as coming from the ingress node.
    let egress = page_dom(&format!("http://{}/", chain.egress.addr("admin")));
    assert!(egress.contains(&older_id), "{egress}");
    assert!(egress.contains(">ingress<"), "{egress}");
    assert!(egress.contains(" via ingress<"), "{egress}");

    screenshot(&chain.dir, "status-page.png", &url);
}

#[test]
fn with_a_token_the_page_asks_for_it_and_shows_nothing_before() {
    let dir = TempDir::new("page-token");
    let backend = backends::echo();
    let cfg = format!(
        r#"
[node]
name = "solo"
[admin]
listen = "tcp://127.0.0.1:0"
token = "env:TEST_ADMIN_TOKEN"
[[service]]
name = "chat"
listen = ["tcp://127.0.0.1:0"]
backends = ["{}"]
"#,
        backend.url()
    );
    let path = dir.write("solo.toml", &cfg);
    let node = Proc::start_env(
        &["run", "-c", path.to_str().expect("utf-8 path")],
        &[("TEST_ADMIN_TOKEN", TOKEN)],
    );
    let admin = node.addr("admin");
    let mut c = connect(&node.addr("chat"));
    roundtrip(&mut c, b"behind a token");
    let (id, client) = session_of(&admin, Some(TOKEN), &c);
    let url = format!("http://{admin}/");

    // The page itself needs no token, and tells the browser to keep it and load nothing else.
    let (status, head, body) = get_with_head(&admin, "/");
    assert_eq!(status, 200, "{head}");
    assert!(header(&head, "content-type").is_some_and(|v| v.starts_with("text/html")));
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    let csp = header(&head, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{head}");
    assert!(body.contains("<title>busway status</title>"));

    let asked = page_dom(&url);
    assert!(asked.contains(r#"<body data-state="auth""#), "{asked}");
    assert!(
        asked.contains(r#"<form id="auth">"#),
        "no token prompt: {asked}"
    );
    assert!(asked.contains("needs a token"), "{asked}");
    for data in [id.as_str(), client.as_str(), ">chat<"] {
        assert!(
            !asked.contains(data),
            "{data} shown without the token: {asked}"
        );
    }

    let refused = page_dom(&format!("{url}#token=not-the-token"));
    assert!(refused.contains(r#"<body data-state="auth""#), "{refused}");
    assert!(refused.contains("refused that token"), "{refused}");
    assert!(!refused.contains(&id), "{refused}");
    assert!(!refused.contains("not-the-token"), "{refused}");

    let shown = page_dom(&format!("{url}#token={TOKEN}"));
    assert!(shown.contains(r#"<body data-state="ok""#), "{shown}");
    assert!(shown.contains(&id) && shown.contains(&client), "{shown}");
    assert!(!shown.contains(TOKEN), "the token is on the page: {shown}");
}

/// A peer that holds the bus secret chooses its node name and each session's id and client
/// address; the page must show them as the characters they are.
#[test]
fn text_a_peer_chose_is_shown_as_text() {
    const NODE: &str = "<b id=evil-node>peer</b>";
    const ID: &str = "<img src=x onerror=\"document.title='pwned'\">";
    const CLIENT: &str = "<script>document.title='pwned'</script>";
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let cfg = Config {
        node: NODE.into(),
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Config::default()
    };
    let mut p = FakePeer::established(&chain.egress.addr("bus"), cfg);
    p.conn
        .open(OpenParams {
            service: "chat".into(),
            session_id: ID.into(),
            client: CLIENT.into(),
            mode: "one-to-one".into(),
            ..Default::default()
        })
        .expect("open a stream");
    p.flush();
    // Answer the node's pings while the browser looks, or the transport is declared dead.
    let stop = Arc::new(AtomicBool::new(false));
    let pump = {
        let stop = stop.clone();
        std::thread::spawn(
            move || {
                while !stop.load(Ordering::Relaxed) && p.exchange() {}
            },
        )
    };
    let admin = chain.egress.addr("admin");
    assert!(
        wait_for(Duration::from_secs(5), || http::get(&admin, "/v1/sessions")
            .body
            .contains("onerror")),
        "the peer's session is not listed: {}",
        http::get(&admin, "/v1/sessions").body
    );

    let dom = page_dom(&format!("http://{admin}/"));
    stop.store(true, Ordering::Relaxed);
    pump.join().expect("pump");
    assert!(dom.contains(r#"<body data-state="ok""#), "{dom}");
    assert!(dom.contains("<title>busway status</title>"), "{dom}");
    for escaped in [
        "&lt;img src=x onerror=\"document.title='pwned'\"&gt;",
        "&lt;script&gt;document.title='pwned'&lt;/script&gt; via &lt;b id=evil-node&gt;peer&lt;/b&gt;",
        ">&lt;b id=evil-node&gt;peer&lt;/b&gt;<",
    ] {
        assert!(dom.contains(escaped), "{escaped} is not on the page:\n{dom}");
    }
    for markup in ["<img", "<b id=", "<script>document"] {
        assert!(!dom.contains(markup), "{markup} became markup:\n{dom}");
    }
}

#[test]
fn the_page_shows_a_gateways_upstreams_and_downstreams() {
    let up = upstream(&["--mode", "echo", "--tag", "A:"]);
    let gw = Gateway::start(&[up_url(&up)], "", 1);
    let mut client = connect(&gw.addr());
    client.write_all(b"m").expect("write");
    assert_eq!(read_n(&mut client, 3), b"A:m");
    let downstream = gw.wait_downstreams(1).remove(0);
    let uuid = downstream["uuid"].as_str().expect("uuid").to_string();
    let upstream_id = gw.upstreams()[0]["id"].as_str().expect("id").to_string();

    let dom = page_dom(&format!("http://{}/", gw.admin()));
    assert!(dom.contains(r#"<body data-state="ok""#), "{dom}");
    for (what, text) in [
        (
            "the gateway's section",
            "gRPC gateway <span class=\"name\">plex</span>",
        ),
        ("the upstream's id", upstream_id.as_str()),
        ("the upstream's address", up_url(&up).as_str()),
        ("the downstream", uuid.as_str()),
        (
            "the downstream's client",
            downstream["client"].as_str().unwrap_or("?"),
        ),
    ] {
        assert!(
            dom.contains(text),
            "{what} ({text}) is not on the page:\n{dom}"
        );
    }
}

/// What the page asks for: one page of sessions, youngest first, and the total in a header.
#[test]
fn sessions_come_a_page_at_a_time_youngest_first_with_the_total() {
    let backend = backends::echo();
    let chain = Chain::new(&backend.url());
    let admin = chain.ingress.addr("admin");
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let mut c = chain.client();
        roundtrip(&mut c, &[b'a' + i]);
        ids.push(session_of(&admin, None, &c).0);
        clients.push(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    let page = |query: &str| {
        let (status, head, body) = get_with_head(&admin, &format!("/v1/sessions{query}"));
        assert_eq!(status, 200, "{head}\n{body}");
        let total = header(&head, "x-total-count").map(str::to_string);
        let listed: Vec<String> = json(&body)
            .as_array()
            .expect("an array")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect();
        (total, listed)
    };
    let youngest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(page(""), (Some("3".into()), youngest_first.clone()));
    assert_eq!(
        page("?limit=2"),
        (Some("3".into()), youngest_first[..2].to_vec())
    );
    assert_eq!(
        page("?limit=2&offset=2"),
        (Some("3".into()), youngest_first[2..].to_vec())
    );
    assert_eq!(page("?offset=5"), (Some("3".into()), vec![]));
    let (status, _, body) = get_with_head(&admin, "/v1/sessions?limit=lots");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limit"), "{body}");
}

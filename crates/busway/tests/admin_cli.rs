//! `busway reload` and `busway status` as clients of the admin API, against fake admin servers
//! that record the request and answer what the test says: the request line, the token, the exit
//! codes, and answers that never end.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use busway_test_support::proc::run_to_end;

/// A one-connection-at-a-time server: sends every request head it reads to the test and answers
/// with `reply`.
struct Fake {
    url: String,
    heads: mpsc::Receiver<Vec<String>>,
}

fn fake(reply: impl Fn(&mut TcpStream) + Send + 'static) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, heads) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut head = Vec::new();
            let mut r = BufReader::new(c.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let _ = tx.send(head);
            reply(&mut c);
        }
    });
    Fake { url, heads }
}

fn json(status: &str, body: &str) -> impl Fn(&mut TcpStream) + Send + 'static {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    move |c: &mut TcpStream| {
        let _ = c.write_all(answer.as_bytes());
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn reload_posts_with_the_token_and_exits_0_on_ok() {
    let f = fake(json("200 OK", r#"{"result":"ok"}"#));
    let (code, out, err) = run_to_end(&["reload", "--admin", &f.url, "--token", "t0ken"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration reloaded"), "{out}");
    let head = f.heads.recv().unwrap();
    assert_eq!(head[0], "POST /v1/reload HTTP/1.1");
    assert_eq!(header(&head, "authorization"), Some("Bearer t0ken"));
    assert_eq!(header(&head, "content-length"), Some("0"));
    assert!(header(&head, "host").is_some());

    // The token from the environment; the tcp:// form of the `listening admin` line.
    let tcp = f.url.replace("http://", "tcp://");
    let (code, _, err) = run_to_end(
        &["reload", "--admin", &tcp],
        &[("BUSWAY_ADMIN_TOKEN", "from-env")],
    );
    assert_eq!(code, 0, "{err}");
    let head = f.heads.recv().unwrap();
    assert_eq!(header(&head, "authorization"), Some("Bearer from-env"));

    // No token at all: no Authorization header.
    let (code, _, _) = run_to_end(&["reload", "--admin", &f.url], &[]);
    assert_eq!(code, 0);
    assert_eq!(header(&f.heads.recv().unwrap(), "authorization"), None);
}

#[test]
fn reload_errors_exit_1_with_the_nodes_reason() {
    for (status, body, want) in [
        (
            "400 Bad Request",
            r#"{"error":"busway.toml:3: `listen`: not an address"}"#,
            "invalid; the previous one keeps running: busway.toml:3: `listen`: not an address",
        ),
        (
            "409 Conflict",
            r#"{"error":"node.name cannot change without a restart"}"#,
            "cannot apply this change; the previous configuration keeps running: node.name cannot change",
        ),
        (
            "401 Unauthorized",
            r#"{"error":"unauthorized"}"#,
            "--token or $BUSWAY_ADMIN_TOKEN",
        ),
        ("404 Not Found", r#"{"error":"not found"}"#, ": no POST /v1/reload here"),
        ("500 Internal Server Error", "oops\x1b[2J", "HTTP 500: oops\u{fffd}[2J"),
    ] {
        let f = fake(json(status, body));
        let (code, out, err) = run_to_end(&["reload", "--admin", &f.url], &[]);
        assert_eq!(code, 1, "{status}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(want), "{status}: {err}");
    }
    let (code, _, err) = run_to_end(&["reload", "--admin", "http://127.0.0.1:1"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach 127.0.0.1:1"), "{err}");
}

#[test]
fn reload_usage_errors_exit_2() {
    for args in [
        // https:// URLs are for a node with [admin.tls]; --ca goes with them only, and must
        // name a readable CA file.
        &[
            "reload",
            "--admin",
            "http://127.0.0.1:9901",
            "--ca",
            "/etc/hostname",
        ][..],
        &[
            "reload",
            "--admin",
            "https://127.0.0.1:9901",
            "--ca",
            "/nonexistent/ca.crt",
        ],
        &["reload", "--admin", "ftp://127.0.0.1:9901"],
        &["reload", "--admin", "http://127.0.0.1:9901/v1"],
        &["reload", "--no-such-flag"],
        &["reload", "extra"],
    ] {
        let (code, _, err) = run_to_end(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, _, err) = run_to_end(
        &["reload", "--admin", "http://127.0.0.1:9"],
        &[("BUSWAY_ADMIN_TOKEN", "a\nInjected: 1")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("control character"), "{err}");
}

#[test]
fn help_lists_reload_and_hides_the_token() {
    let (code, out, _) = run_to_end(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("reload"), "{out}");
    let (code, out, _) = run_to_end(
        &["reload", "--help"],
        &[("BUSWAY_ADMIN_TOKEN", "secret-value")],
    );
    assert_eq!(code, 0);
    assert!(out.contains("--admin") && out.contains("--token"), "{out}");
    assert!(out.contains("BUSWAY_ADMIN_TOKEN"), "{out}");
    assert!(!out.contains("secret-value"), "{out}");
}

#[test]
fn status_sends_the_token() {
    let f = fake(json("200 OK", "[]"));
    let (code, out, err) = run_to_end(&["status", "--admin", &f.url, "--token", "tok"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SERVICES"), "{out}");
    for path in ["/v1/services", "/v1/peers", "/v1/sessions"] {
        let head = f.heads.recv().unwrap();
        assert_eq!(head[0], format!("GET {path} HTTP/1.1"));
        assert_eq!(header(&head, "authorization"), Some("Bearer tok"));
    }
}

/// An admin URL that answers without end (a wrong port, a hostile server): `status` stops at the
/// cap with a message, soon, having read no more than the cap and what the sockets buffer.
#[test]
fn status_stops_reading_an_endless_answer() {
    let sent = Arc::new(AtomicUsize::new(0));
    for framing in ["", "Transfer-Encoding: chunked\r\n"] {
        sent.store(0, Ordering::SeqCst);
        let counter = sent.clone();
        let chunked = !framing.is_empty();
        let f = fake(move |c: &mut TcpStream| {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n");
            let _ = c.write_all(head.as_bytes());
            let block = vec![b' '; 64 * 1024];
            let chunk = [
                format!("{:x}\r\n", block.len()).into_bytes(),
                block.clone(),
                b"\r\n".to_vec(),
            ]
            .concat();
            let piece = if chunked { &chunk } else { &block };
            // Bounded too: a client that read forever would still see this test end.
            for _ in 0..16 * 1024 {
                if c.write_all(piece).is_err() {
                    return;
                }
                counter.fetch_add(piece.len(), Ordering::SeqCst);
            }
        });
        let start = Instant::now();
        let (code, _, err) = run_to_end(&["status", "--admin", &f.url], &[]);
        let took = start.elapsed();
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("larger than 8 MiB"), "{err}");
        assert!(took < Duration::from_secs(8), "{took:?}");
        // Let the writer notice the closed connection.
        std::thread::sleep(Duration::from_millis(200));
        let n = sent.load(Ordering::SeqCst);
        assert!(n < 40 << 20, "the client read {n} bytes");
    }
}

//! CONTRACT section 4: a Cloudbus controller and segment from their INI files.

mod common;

use common::*;

#[test]
fn controller_and_segment_from_ini_files_carry_sessions() {
    let backend = backends::echo();
    let dir = TempDir::new("ini");
    let seg = dir.write(
        "segment.ini",
        &format!(
            "[Cloudbus]\n\n; the echo service\n[Echo]\nbind=tcp://127.0.0.1:0\nserver={}\n",
            backend.url()
        ),
    );
    let segment = Proc::start(&["segment", "-f", seg.to_str().unwrap()]);
    let bus = segment.url("bus");
    let ctl = dir.write(
        "controller.ini",
        &format!("[cloudbus]\n[EchoFront]\nBIND=tcp://127.0.0.1:0\nserver={bus}  # the segment\n"),
    );
    let controller = Proc::start(&["controller", "-f", ctl.to_str().unwrap()]);
    let mut c = connect(&controller.addr("EchoFront"));
    roundtrip(&mut c, b"through cloudbus ini files");
    // The segment pins the session to its own section's service whatever the controller named it.
    assert_eq!(backend.accepted(), 1);

    // CONFIG_PATH is honoured when -f is absent.
    let env_ctl = busway_test_support::Proc::start_env(
        &["controller"],
        &[("CONFIG_PATH", ctl.to_str().unwrap())],
    );
    let mut c2 = connect(&env_ctl.addr("EchoFront"));
    roundtrip(&mut c2, b"via CONFIG_PATH");
}

#[test]
fn ini_errors_exit_2_with_file_line_and_key() {
    let dir = TempDir::new("inierr");
    let cases = [
        (
            "c.ini",
            "controller",
            "[Cloudbus]\n[Svc]\nbind=tcp://127.0.0.1:0\nserver=tcp://127.0.0.1:1\ncolour=blue\n",
            "c.ini:5: Svc.colour: unknown key",
        ),
        (
            "s.ini",
            "segment",
            "[Cloudbus]\n[Svc]\nbind=tcp://127.0.0.1:0\nbackend=tcp://127.0.0.1:1\n  tcp://no-port\n",
            "s.ini:5: Svc.backend: invalid address",
        ),
    ];
    for (name, role, text, expected) in cases {
        let bad = dir.write(name, text);
        let (code, out, err) =
            busway_test_support::proc::run_to_end(&[role, "-f", bad.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "printed before failing: {out}");
        assert!(err.contains(expected), "{err}");
    }
}

/// A file of `crates/busway-config/tests/cloudbus-ini/`: the shapes Cloudbus 0.4 ships (its
/// installed controller.ini and segment.ini, its benchmark configurations, all with `backend=`).
fn shipped(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../busway-config/tests/cloudbus-ini")
        .join(name)
}

/// The shipped file with its addresses replaced by ones that work on loopback. Each `from` must
/// occur, so the test cannot drift away from the data it claims to run.
fn retarget(name: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(shipped(name)).unwrap();
    for (from, to) in pairs {
        assert!(text.contains(from), "{name} no longer contains {from}");
        text = text.replace(from, to);
    }
    text
}

/// Whether `msg` comes back through `addr`. A session that arrives while the controller is
/// still connecting to its segment may be refused (issue #10, item 4), so the Unix test retries.
fn echoes(addr: &str, msg: &[u8]) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    use std::io::{Read, Write};
    let mut back = vec![0; msg.len()];
    c.write_all(msg).is_ok() && c.read_exact(&mut back).is_ok() && back == msg
}

fn stops_cleanly(mut p: Proc) {
    p.signal(15);
    let st = p.wait_exit(std::time::Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}; stderr:\n{}",
        p.stderr()
    );
}

#[test]
fn shipped_shapes_pass_check_in_their_roles() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "controller.ini",
            "controller",
            &[
                "listen = [\"tcp://0.0.0.0:10022\"]",
                "peers = [\"unix:///var/run/cloudbus/ssh.sock\"]",
            ],
        ),
        (
            "segment.ini",
            "segment",
            &[
                "listen = [\"unix:///var/run/cloudbus/ssh.sock\"]",
                "backends = [\"tcp://localhost:22\"]",
            ],
        ),
        (
            "bench-controller.ini",
            "controller",
            &[
                "peers = [\"tcp://server1.zone-a.example:8080\", \"tcp://server2.zone-b.example:8080\", \"tcp://server3.zone-c.example:8080\"]",
                "mode = \"half-duplex\"",
            ],
        ),
        (
            "bench-segment.ini",
            "segment",
            &["backends = [\"tcp://localhost:80\"]"],
        ),
        ("mixed.ini", "controller", &["mode = \"full-duplex\""]),
        ("mixed.ini", "segment", &["name = \"Feed\""]),
        ("crlf.ini", "segment", &["backends = [\"tcp://127.0.0.1:7101\", \"tcp://127.0.0.1:7102\"]"]),
    ];
    for (file, role, lines) in cases {
        let path = shipped(file);
        let (code, out, err) = busway_test_support::proc::run_to_end(
            &["check", "--role", role, "-c", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 0, "{file} as {role}: {err}");
        for l in *lines {
            assert!(
                out.lines().any(|o| o == *l),
                "{file} as {role}: no {l:?} in\n{out}"
            );
        }
    }
}

/// The benchmark layout: one controller fanning out (half duplex, the default for several
/// `backend=` lines) over three segments, each in front of a backend named `localhost`. Only the
/// third segment's backend answers, so every session echoes only if the controller really sends
/// it to all three `backend=` targets (one-to-one round robin would fail two sessions in three).
#[test]
fn benchmark_shapes_run_a_controller_over_three_segments() {
    let dir = TempDir::new("inibench");
    let servers = [backends::silent(), backends::silent(), backends::echo()];
    let mut segments = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let port = server.addr.rsplit(':').next().unwrap();
        let text = retarget(
            "bench-segment.ini",
            &[
                ("tcp://0.0.0.0:8080", "tcp://127.0.0.1:0"),
                ("tcp://localhost:80", &format!("tcp://localhost:{port}")),
            ],
        );
        let path = dir.write(&format!("segment{i}.ini"), &text);
        segments.push(Proc::start(&["segment", "-f", path.to_str().unwrap()]));
    }
    let buses: Vec<String> = segments.iter().map(|s| s.url("bus")).collect();
    let text = retarget(
        "bench-controller.ini",
        &[
            ("tcp://0.0.0.0:8080", "tcp://127.0.0.1:0"),
            ("tcp://server1.zone-a.example:8080", &buses[0]),
            ("tcp://server2.zone-b.example:8080", &buses[1]),
            ("tcp://server3.zone-c.example:8080", &buses[2]),
        ],
    );
    let path = dir.write("controller.ini", &text);
    let controller = Proc::start(&["controller", "-f", path.to_str().unwrap()]);
    // An INI node has no admin API: its log says when each segment's transport is up.
    let up = wait_for(std::time::Duration::from_secs(10), || {
        controller.stderr().matches("transport established").count() == 3
    });
    assert!(up, "transports not up; stderr:\n{}", controller.stderr());
    let addr = controller.addr("Service0");
    for i in 0..3 {
        let msg = format!("benchmark shape, session {i}");
        assert!(echoes(&addr, msg.as_bytes()), "session {i} got no echo");
    }
    assert!(servers[2].accepted() >= 3, "{}", servers[2].accepted());
    stops_cleanly(controller);
    for s in segments {
        stops_cleanly(s);
    }
}

/// The installed layout: the controller reaches its segment over a Unix socket.
#[test]
fn installed_shapes_run_over_a_unix_socket() {
    let dir = TempDir::new("iniunix");
    let sock = dir.path("ssh.sock");
    let sock_url = format!("unix://{}", sock.display());
    let backend = backends::echo();
    let port = backend.addr.rsplit(':').next().unwrap().to_string();
    let seg = retarget(
        "segment.ini",
        &[
            ("unix:///var/run/cloudbus/ssh.sock", &sock_url),
            ("tcp://localhost:22", &format!("tcp://localhost:{port}")),
        ],
    );
    let seg = dir.write("segment.ini", &seg);
    let segment = Proc::start(&["segment", "-f", seg.to_str().unwrap()]);
    assert_eq!(segment.url("bus"), sock_url);
    let ctl = retarget(
        "controller.ini",
        &[
            ("tcp://0.0.0.0:10022", "tcp://127.0.0.1:0"),
            ("unix:///var/run/cloudbus/ssh.sock", &sock_url),
        ],
    );
    let ctl = dir.write("controller.ini", &ctl);
    let controller = Proc::start(&["controller", "-f", ctl.to_str().unwrap()]);
    let addr = controller.addr("Service0");
    let ok = wait_for(std::time::Duration::from_secs(10), || {
        echoes(&addr, b"ssh-shaped")
    });
    assert!(
        ok,
        "no echo through {addr}; stderr:\n{}",
        controller.stderr()
    );
    stops_cleanly(controller);
    stops_cleanly(segment);
    assert!(!sock.exists(), "the segment left its socket file behind");
}

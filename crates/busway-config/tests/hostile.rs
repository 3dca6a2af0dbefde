//! Configuration text is input like any other: no prefix, deletion or byte swap of a valid file
//! may panic a loader. Every variant must come back as `Ok` or as a one-line error.

use busway_config::*;

const TOML: &str = r#"[node]
name = "edge-a"
labels = { zone = "a" }
shutdown_grace = "1.5s"
[admin]
listen = "tcp://[::1]:9901"
token = "tok"
[bus]
listen = ["tcp://127.0.0.1:7100", "unix:///run/b.sock"]
connections_per_peer = 2
[dns]
servers = ["127.0.0.1:53"]
[[service]]
name = "chat"
listen = ["tcp://0.0.0.0:7000"]
peers = ["tcp://peer.example:7100"]
health_check = { interval = "1s", timeout = "500ms" }
"#;

const INI: &str =
    "[Cloudbus]\n; c\n[Svc]\nbind=tcp://[::1]:1 # x\nserver=\n  tcp://a:1\nmode=one to one\n";

/// Every prefix, every single-character deletion, and every character replaced by a few
/// troublemakers.
fn variants(text: &str) -> Vec<String> {
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let mut out = Vec::new();
    for (n, &i) in bounds.iter().enumerate() {
        let next = bounds.get(n + 1).copied().unwrap_or(text.len());
        out.push(text[..i].to_string());
        out.push(format!("{}{}", &text[..i], &text[next..]));
        for c in ["\"", "[", "=", "\n", "é", "\u{0}", "9"] {
            out.push(format!("{}{c}{}", &text[..i], &text[next..]));
        }
    }
    out
}

fn check(result: Result<NodeConfig, ConfigError>) {
    if let Err(e) = result {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn mangled_toml_never_panics() {
    for v in variants(TOML) {
        check(parse_toml(&v, "f.toml"));
        if let Ok(c) = parse_toml(&v, "f.toml") {
            // Whatever parses must also render to TOML that parses.
            let text = render_toml(&c);
            assert!(parse_toml(&text, "r.toml").is_ok(), "{v}\n---\n{text}");
        }
    }
}

#[test]
fn mangled_ini_never_panics() {
    for v in variants(INI) {
        check(parse_ini(&v, "f.ini", Role::Controller));
        check(parse_ini(&v, "f.ini", Role::Segment));
    }
}

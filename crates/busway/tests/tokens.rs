//! The tokens API of CONTRACT section 10: issue, list, revoke, bad requests, persistence in
//! `state_dir`, and the token string nowhere but the 201 answer.

use std::time::Duration;

use busway_test_support::http::request;
use busway_test_support::proc::{Proc, TempDir};

fn node_toml(state_dir: &str) -> String {
    format!(
        "[node]\nname = \"issuer\"\nstate_dir = \"{state_dir}\"\n[admin]\nlisten = \"tcp://127.0.0.1:0\"\ntoken = \"admin-token-for-tests\"\n[[service]]\nname = \"chat\"\nlisten = [\"tcp://127.0.0.1:0\"]\nbackends = [\"tcp://127.0.0.1:9\"]\n"
    )
}

const ADMIN: Option<&str> = Some("admin-token-for-tests");

fn field(json: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .to_string()
}

#[test]
fn issue_list_revoke_and_survive_a_restart() {
    let dir = TempDir::new("tokens");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = node_toml(&state.display().to_string());
    let mut node = Proc::run_toml(&dir, "issuer.toml", &cfg);
    let admin = node.addr("admin");

    let body = br#"{"node": "edge-b", "services": ["chat"], "ttl": "1h"}"#;
    let unauthorised = request("POST", &admin, "/v1/tokens", None, body);
    assert_eq!(unauthorised.status, 401);
    let made = request("POST", &admin, "/v1/tokens", ADMIN, body);
    assert_eq!(made.status, 201, "{}", made.body);
    let id = field(&made.body, "id");
    let token = field(&made.body, "token");
    assert_eq!(field(&made.body, "node"), "edge-b");
    let expires = field(&made.body, "expires_at");
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert!(token.starts_with("bwt1_") && token.len() > 64, "{token}");

    let kept = request(
        "POST",
        &admin,
        "/v1/tokens",
        ADMIN,
        br#"{"node": "edge-c", "services": ["chat", "mail"], "ttl": "30m"}"#,
    );
    assert_eq!(kept.status, 201, "{}", kept.body);
    let kept_id = field(&kept.body, "id");

    let listed = request("GET", &admin, "/v1/tokens", ADMIN, b"");
    assert_eq!(listed.status, 200);
    assert!(
        listed.body.contains(&id) && listed.body.contains(&kept_id),
        "{}",
        listed.body
    );
    assert!(
        !listed.body.contains(&token),
        "the list shows a token: {}",
        listed.body
    );
    assert!(!listed.body.contains("\"token\""), "{}", listed.body);

    assert_eq!(
        request("DELETE", &admin, &format!("/v1/tokens/{id}"), ADMIN, b"").status,
        204
    );
    assert_eq!(
        request("DELETE", &admin, &format!("/v1/tokens/{id}"), ADMIN, b"").status,
        404
    );
    let after = request("GET", &admin, "/v1/tokens", ADMIN, b"").body;
    assert!(!after.contains(&id), "a revoked token is listed: {after}");

    // A restart keeps the live token and not the revoked one.
    node.signal(15);
    assert!(node.wait_exit(Duration::from_secs(10)).is_some());
    let stderr = node.stderr();
    assert!(!stderr.contains(&token), "the token reached the log");
    let node = Proc::run_toml(&dir, "issuer.toml", &cfg);
    let admin = node.addr("admin");
    let again = request("GET", &admin, "/v1/tokens", ADMIN, b"").body;
    assert!(again.contains(&kept_id), "{again}");
    assert!(!again.contains(&id), "{again}");
    let meta = std::fs::metadata(state.join("tokens.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o077,
        0,
        "tokens.json is readable by others"
    );
}

#[test]
fn bad_requests_are_400_and_nothing_is_issued() {
    let dir = TempDir::new("tokens-bad");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let node = Proc::run_toml(
        &dir,
        "issuer.toml",
        &node_toml(&state.display().to_string()),
    );
    let admin = node.addr("admin");
    for body in [
        &br#"{"node": "edge-b", "services": ["chat"], "ttl": "soon"}"#[..],
        br#"{"node": "edge-b", "services": ["chat"], "ttl": "0s"}"#,
        br#"{"node": "edge-b", "services": [], "ttl": "1h"}"#,
        br#"{"node": "", "services": ["chat"], "ttl": "1h"}"#,
        br#"{"node": "edge b", "services": ["chat"], "ttl": "1h"}"#,
        br#"{"node": "edge-b", "services": ["chat"]}"#,
        br#"{"node": "edge-b", "services": ["chat"], "ttl": "1h", "admin": true}"#,
        b"not json",
    ] {
        let a = request("POST", &admin, "/v1/tokens", ADMIN, body);
        assert_eq!(
            a.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            a.body
        );
        assert!(a.body.contains("\"error\""), "{}", a.body);
    }
    assert_eq!(request("GET", &admin, "/v1/tokens", ADMIN, b"").body, "[]");
    assert_eq!(
        request("DELETE", &admin, "/v1/tokens/0123456789abcdef", ADMIN, b"").status,
        404
    );
}

#[test]
fn an_unreadable_token_file_stops_the_start() {
    let dir = TempDir::new("tokens-corrupt");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("tokens.json"), "{{{").unwrap();
    let cfg = dir.write("issuer.toml", &node_toml(&state.display().to_string()));
    let (code, _, stderr) =
        busway_test_support::proc::run_to_end(&["run", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("tokens.json"), "{stderr}");
}

//! `busway status`: a table of a running node's services, peers and sessions, read from its
//! admin API with a minimal blocking HTTP/1.1 client (the token, if any, from
//! `$BUSWAY_ADMIN_TOKEN`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

fn get(hostport: &str, path: &str) -> Result<Value, String> {
    let mut s =
        TcpStream::connect(hostport).map_err(|e| format!("cannot reach {hostport}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let auth = std::env::var("BUSWAY_ADMIN_TOKEN")
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{path}: HTTP {status}: {}", body.trim()));
    }
    serde_json::from_str(body).map_err(|e| format!("{path}: {e}"))
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn run(admin: &str) -> ExitCode {
    let hostport = admin
        .trim_start_matches("http://")
        .trim_start_matches("tcp://")
        .trim_end_matches('/');
    let fetched = (|| -> Result<(Value, Value, Value), String> {
        Ok((
            get(hostport, "/v1/services")?,
            get(hostport, "/v1/peers")?,
            get(hostport, "/v1/sessions")?,
        ))
    })();
    let (services, peers, sessions) = match fetched {
        Ok(x) => x,
        Err(e) => {
            eprintln!("busway status: {e}");
            return ExitCode::from(1);
        }
    };
    println!("SERVICES");
    println!(
        "{:<20} {:<12} {:<32} {:<6} {:>8}",
        "NAME", "MODE", "TARGET", "STATE", "SESSIONS"
    );
    for svc in services.as_array().into_iter().flatten() {
        let targets = svc["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            println!(
                "{:<20} {:<12} {:<32} {:<6} {:>8}",
                s(svc, "name"),
                s(svc, "mode"),
                "-",
                "-",
                "-"
            );
        }
        for t in targets {
            println!(
                "{:<20} {:<12} {:<32} {:<6} {:>8}",
                s(svc, "name"),
                s(svc, "mode"),
                s(&t, "address"),
                s(&t, "state"),
                s(&t, "sessions")
            );
        }
    }
    println!("\nPEERS");
    println!(
        "{:<28} {:<16} {:<12} {:>8} {:>8} {:>12} {:>12}",
        "PEER", "NODE", "STATE", "RTT_MS", "SESSIONS", "BYTES_IN", "BYTES_OUT"
    );
    for p in peers.as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<16} {:<12} {:>8} {:>8} {:>12} {:>12}",
            s(p, "peer"),
            s(p, "node"),
            s(p, "state"),
            format!("{:.3}", p["rtt_ms"].as_f64().unwrap_or(0.0)),
            s(p, "sessions"),
            s(p, "bytes_in"),
            s(p, "bytes_out")
        );
    }
    println!("\nSESSIONS");
    println!(
        "{:<18} {:<16} {:<24} {:<10} {:>12} {:>12} {:>10}",
        "ID", "SERVICE", "CLIENT", "STATE", "BYTES_IN", "BYTES_OUT", "AGE_MS"
    );
    for x in sessions.as_array().into_iter().flatten() {
        println!(
            "{:<18} {:<16} {:<24} {:<10} {:>12} {:>12} {:>10}",
            s(x, "id"),
            s(x, "service"),
            s(x, "client"),
            s(x, "state"),
            s(x, "bytes_in"),
            s(x, "bytes_out"),
            s(x, "age_ms")
        );
    }
    ExitCode::SUCCESS
}

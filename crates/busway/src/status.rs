//! `busway status`: a table of a running node's services, peers and sessions, read from its
//! admin API.

use std::process::ExitCode;

use serde_json::Value;

use crate::admin_client::{Client, Error};
use crate::cli::AdminArgs;
use crate::http_answer::printable;

/// A field as table text; control characters are replaced so that no answer can drive the
/// terminal.
fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => printable(x, 256),
        Value::Null => "-".into(),
        other => printable(&other.to_string(), 256),
    }
}

pub fn run(args: &AdminArgs) -> ExitCode {
    let client = match Client::new(&args.admin, args.token.clone(), args.ca.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.report("status"),
    };
    let fetched = (|| -> Result<(Value, Value, Value), Error> {
        Ok((
            client.get_json("/v1/services")?,
            client.get_json("/v1/peers")?,
            client.get_json("/v1/sessions")?,
        ))
    })();
    let (services, peers, sessions) = match fetched {
        Ok(x) => x,
        Err(e) => return e.report("status"),
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

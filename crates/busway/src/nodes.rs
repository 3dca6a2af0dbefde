//! `busway nodes`: the nodes a running node has discovered (CONTRACT section 6), as a table,
//! read from its `GET /v1/nodes`.

use std::process::ExitCode;

use serde_json::Value;

use crate::admin_client::Client;
use crate::cli::AdminArgs;
use crate::http_answer::printable;

/// A field as table text: strings as they are, lists and maps joined, control characters
/// replaced so that no record in etcd can drive the terminal.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    printable(&text, 256)
}

pub fn run(args: &AdminArgs) -> ExitCode {
    let client = match Client::new(&args.admin, args.token.clone(), args.ca.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.report("nodes"),
    };
    let nodes = match client.get_json("/v1/nodes") {
        Ok(v) => v,
        Err(e) => return e.report("nodes"),
    };
    println!(
        "{:<24} {:<12} {:<28} {:<32} {:<20} {:<5} {:<4}",
        "NAME", "NAMESPACE", "LABELS", "BUS", "SERVICES", "RELAY", "SELF"
    );
    for n in nodes.as_array().into_iter().flatten() {
        let flag = |k: &str| {
            if n[k].as_bool() == Some(true) {
                "yes"
            } else {
                "-"
            }
        };
        println!(
            "{:<24} {:<12} {:<28} {:<32} {:<20} {:<5} {:<4}",
            cell(&n["name"]),
            cell(&n["namespace"]),
            cell(&n["labels"]),
            cell(&n["bus"]),
            cell(&n["services"]),
            flag("relay"),
            flag("self"),
        );
    }
    ExitCode::SUCCESS
}

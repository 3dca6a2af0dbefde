//! The gateway's Prometheus series, appended to the node's `/metrics`.
//!
//! Upstreams are labelled by address, which is what an operator wrote and what stays meaningful
//! across restarts (ids are handed out per process).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::gateway::Gateway;
use crate::upstream::Upstream;

/// Renders every family once, with a sample per gateway (or per upstream).
pub fn render(gateways: &[Arc<Gateway>], out: &mut String) {
    let ups: Vec<(Arc<str>, Arc<Upstream>)> = gateways
        .iter()
        .flat_map(|g| {
            g.upstream_list()
                .into_iter()
                .map(|u| (g.service.clone(), u))
                .collect::<Vec<_>>()
        })
        .collect();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);

    family(
        out,
        "busway_upstream_ready",
        "gauge",
        "1 while the upstream takes downstreams: ready, live and its call open.",
    );
    for (s, u) in &ups {
        sample(
            out,
            "busway_upstream_ready",
            &[("service", s), ("upstream", &u.address.to_string())],
            u.healthy() as u64,
        );
    }
    family(
        out,
        "busway_upstream_downstreams",
        "gauge",
        "Downstreams assigned to the upstream.",
    );
    for (s, u) in &ups {
        let n = u.downstreams.load(Ordering::Relaxed) as u64;
        sample(
            out,
            "busway_upstream_downstreams",
            &[("service", s), ("upstream", &u.address.to_string())],
            n,
        );
    }
    for (name, help, pick) in [
        (
            "busway_upstream_messages_total",
            "Messages: in = to the upstream, out = from it.",
            (|u: &Upstream| (&u.stats.msgs_in, &u.stats.msgs_out))
                as fn(&Upstream) -> (&AtomicU64, &AtomicU64),
        ),
        (
            "busway_upstream_bytes_total",
            "Payload bytes: in = to the upstream, out = from it.",
            |u: &Upstream| (&u.stats.bytes_in, &u.stats.bytes_out),
        ),
    ] {
        family(out, name, "counter", help);
        for (s, u) in &ups {
            let a = u.address.to_string();
            let (i, o) = pick(u);
            sample(
                out,
                name,
                &[("service", s), ("upstream", &a), ("direction", "in")],
                get(i),
            );
            sample(
                out,
                name,
                &[("service", s), ("upstream", &a), ("direction", "out")],
                get(o),
            );
        }
    }
    family(
        out,
        "busway_upstream_failures_total",
        "counter",
        "Connections to the upstream that ended other than by removal.",
    );
    for (s, u) in &ups {
        sample(
            out,
            "busway_upstream_failures_total",
            &[("service", s), ("upstream", &u.address.to_string())],
            get(&u.stats.failures),
        );
    }
    for (name, help, pick) in [
        ("busway_upstream_lost_messages_total", "Messages of a failed call: queued = never sent, unconfirmed = sent after the last answered heartbeat.", (|u: &Upstream| (&u.stats.lost_queued, &u.stats.unconfirmed)) as fn(&Upstream) -> (&AtomicU64, &AtomicU64)),
        ("busway_upstream_lost_bytes_total", "Payload bytes of those messages.", |u: &Upstream| (&u.stats.lost_queued_bytes, &u.stats.unconfirmed_bytes)),
    ] {
        family(out, name, "counter", help);
        for (s, u) in &ups {
            let a = u.address.to_string();
            let (q, c) = pick(u);
            sample(out, name, &[("service", s), ("upstream", &a), ("stage", "queued")], get(q));
            sample(out, name, &[("service", s), ("upstream", &a), ("stage", "unconfirmed")], get(c));
        }
    }
    family(
        out,
        "busway_grpc_downstreams",
        "gauge",
        "Attached downstreams.",
    );
    for g in gateways {
        sample(
            out,
            "busway_grpc_downstreams",
            &[("service", &g.service)],
            g.downstream_count() as u64,
        );
    }
    for (name, help, pick) in [
        (
            "busway_grpc_reassignments_total",
            "Downstreams moved to another upstream because theirs stopped being healthy.",
            (|g: &Gateway| &g.stats.reassignments) as fn(&Gateway) -> &AtomicU64,
        ),
        (
            "busway_grpc_unknown_uuid_total",
            "Replies dropped: no downstream has their uuid, or they name no target.",
            |g: &Gateway| &g.stats.unknown_uuid,
        ),
        (
            "busway_grpc_overflow_total",
            "Downstreams closed because they did not read and their queue was full.",
            |g: &Gateway| &g.stats.overflow,
        ),
        (
            "busway_grpc_no_upstream_total",
            "New clients closed because no upstream was ready within upstream_wait.",
            |g: &Gateway| &g.stats.no_upstream,
        ),
        (
            "busway_grpc_events_dropped_total",
            "Lifecycle events not sent: their upstream had EVENT_QUEUE events waiting, was closing, or none was healthy.",
            |g: &Gateway| &g.stats.events_dropped,
        ),
    ] {
        family(out, name, "counter", help);
        for g in gateways {
            sample(out, name, &[("service", &g.service)], get(pick(g)));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: u64) {
    let l: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    let _ = writeln!(out, "{name}{{{}}} {v}", l.join(","));
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

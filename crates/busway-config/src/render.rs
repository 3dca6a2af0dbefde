//! The normalised configuration as TOML, for `busway check`.
//!
//! Every default is written out, so the output shows what the node will actually run; durations
//! and addresses are in their canonical forms; secrets are `"<redacted secret>"`. The output is itself a
//! valid busway TOML file (it parses back to the same config, secrets aside), which is what lets an
//! operator turn a Cloudbus INI file into TOML with `busway check`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::duration::format_duration;
use crate::model::{
    Address, ClusterConfig, NodeConfig, RelayConfig, Secret, ServiceConfig, Targets, TlsConfig,
};

/// Renders `cfg` as TOML. See the module docs for what "normalised" means.
pub fn render_toml(cfg: &NodeConfig) -> String {
    let mut out = String::new();
    let o = &mut out;
    line(o, "[node]");
    kv(o, "name", &string(&cfg.node.name));
    kv(o, "namespace", &string(&cfg.node.namespace));
    kv(o, "labels", &string_map(&cfg.node.labels));
    kv(o, "annotations", &string_map(&cfg.node.annotations));
    kv(o, "shutdown_grace", &duration(cfg.node.shutdown_grace));
    if let Some(dir) = &cfg.node.state_dir {
        kv(o, "state_dir", &string(&dir.display().to_string()));
    }

    if let Some(admin) = &cfg.admin {
        line(o, "\n[admin]");
        kv(o, "listen", &address(&admin.listen));
        if let Some(t) = &admin.token {
            kv(o, "token", &redacted(t));
        }
        if let Some(t) = &admin.tls {
            tls(o, "\n[admin.tls]", t);
        }
    }

    line(o, "\n[bus]");
    for l in &cfg.bus.listen {
        // TOML cannot say this (only the Cloudbus segment format can): keep it visible as a comment.
        if let Some(service) = &l.service {
            line(
                o,
                // Quoted like every other value: a Unix path may hold control characters,
                // which a TOML comment cannot.
                &format!(
                    "# {} carries sessions for service {} only",
                    address(&l.address),
                    string(service)
                ),
            );
        }
    }
    let listen: Vec<&Address> = cfg.bus.listen.iter().map(|l| &l.address).collect();
    kv(o, "listen", &addresses(listen));
    if let Some(s) = &cfg.bus.secret {
        if cfg.bus.also_accepted.is_empty() {
            kv(o, "secret", &redacted(s));
        } else {
            let all: Vec<String> = std::iter::once(s)
                .chain(&cfg.bus.also_accepted)
                .map(redacted)
                .collect();
            kv(o, "secret", &format!("[{}]", all.join(", ")));
        }
    }
    kv(
        o,
        "connections_per_peer",
        &cfg.bus.connections_per_peer.to_string(),
    );
    kv(o, "multilink", &cfg.bus.multilink.to_string());
    kv(o, "anonymous", &cfg.bus.anonymous.to_string());
    if let Some(t) = &cfg.bus.token {
        kv(o, "token", &redacted(t));
    }
    kv(o, "resumption", &cfg.bus.resumption.to_string());
    kv(o, "handshake_timeout", &duration(cfg.bus.handshake_timeout));
    kv(o, "max_transports", &cfg.bus.max_transports.to_string());
    if let Some(t) = &cfg.bus.tls {
        tls(o, "\n[bus.tls]", t);
    }

    line(o, "\n[dns]");
    let servers: Vec<String> = cfg
        .dns
        .servers
        .iter()
        .map(|s| string(&s.to_string()))
        .collect();
    kv(o, "servers", &format!("[{}]", servers.join(", ")));
    kv(o, "min_ttl", &duration(cfg.dns.min_ttl));

    if let Some(d) = &cfg.discovery {
        line(o, "\n[discovery]");
        let etcd: Vec<String> = d.etcd.iter().map(|e| string(e)).collect();
        kv(o, "etcd", &format!("[{}]", etcd.join(", ")));
        kv(o, "prefix", &string(&d.prefix));
        kv(o, "lease_ttl", &duration(d.lease_ttl));
    }
    for g in &cfg.gateways {
        line(o, "\n[[gateway]]");
        kv(o, "address", &address(&g.address));
        kv(o, "priority", &g.priority.to_string());
        kv(o, "match", &string_map(&g.r#match));
    }
    if cfg.relay != RelayConfig::default() {
        line(o, "\n[relay]");
        kv(o, "enabled", &cfg.relay.enabled.to_string());
        kv(o, "prefer", &string(cfg.relay.prefer.as_str()));
        if let Some(a) = &cfg.relay.advertise {
            let mut parts = vec![format!("labels = {}", string_map(&a.labels))];
            if let Some(n) = &a.name {
                parts.push(format!("name = {}", string(n)));
            }
            kv(o, "advertise", &format!("{{ {} }}", parts.join(", ")));
        }
    }

    if let Some(c) = &cfg.cluster {
        cluster(o, c);
    }

    for s in &cfg.services {
        service(o, s);
    }
    out
}

fn cluster(o: &mut String, c: &ClusterConfig) {
    line(o, "\n[cluster]");
    kv(o, "interface", &string(&c.interface));
    kv(
        o,
        "service_ip",
        &string(&format!("{}/{}", c.service_ip, c.prefix_len)),
    );
    kv(o, "group", &string(&c.group.to_string()));
    kv(o, "priority", &c.priority.to_string());
    kv(o, "advert_interval", &duration(c.advert_interval));
    kv(o, "dead_after", &c.dead_after.to_string());
    kv(o, "secret", &redacted(&c.secret));
    kv(o, "mdns", &c.mdns.to_string());
    kv(o, "lan_balance", &c.lan_balance.to_string());
    kv(o, "backend", &string(c.backend.as_str()));
}

fn service(o: &mut String, s: &ServiceConfig) {
    line(o, "\n[[service]]");
    kv(o, "name", &string(&s.name));
    kv(o, "listen", &addresses(s.listen.iter()));
    match &s.targets {
        Targets::Peers(p) => kv(o, "peers", &addresses(p.iter())),
        Targets::Backends(b) => kv(o, "backends", &addresses(b.iter())),
    }
    // A gRPC service has no mode (its `[service.grpc]` says how it spreads clients).
    if s.grpc.is_none() {
        kv(o, "mode", &string(s.mode.as_str()));
    }
    kv(o, "balance", &string(s.balance.as_str()));
    kv(o, "connect_timeout", &duration(s.connect_timeout));
    kv(o, "latch_timeout", &duration(s.latch_timeout));
    if let Some(h) = &s.health_check {
        let parts = [
            format!("interval = {}", duration(h.interval)),
            format!("timeout = {}", duration(h.timeout)),
        ];
        kv(o, "health_check", &inline_table(&parts));
    }
    kv(o, "idle_timeout", &duration(s.idle_timeout));
    kv(o, "mirror", &addresses(s.mirror.iter()));
    let l = &s.limits;
    kv(o, "anonymous", &l.anonymous.to_string());
    kv(o, "max_sessions", &l.max_sessions.to_string());
    kv(
        o,
        "max_sessions_per_client",
        &l.max_sessions_per_client.to_string(),
    );
    kv(
        o,
        "new_sessions_per_client",
        &string(&format!("{}/s", l.new_sessions_per_client)),
    );
    if let Some(g) = &s.grpc {
        line(o, "\n[service.grpc]");
        kv(o, "distribute", &string(g.distribute.as_str()));
        kv(o, "ready_interval", &duration(g.ready_interval));
        kv(o, "ready_timeout", &duration(g.ready_timeout));
        kv(o, "live_interval", &duration(g.live_interval));
        kv(o, "live_timeout", &duration(g.live_timeout));
        kv(o, "active_window", &duration(g.active_window));
        kv(o, "upstream_wait", &duration(g.upstream_wait));
        kv(o, "lifecycle_events", &g.lifecycle_events.to_string());
    }
}

fn tls(o: &mut String, header: &str, t: &TlsConfig) {
    line(o, header);
    let paths = [("cert", &t.cert), ("key", &t.key), ("ca", &t.ca)];
    for (k, p) in paths {
        if let Some(p) = p {
            kv(o, k, &string(&p.display().to_string()));
        }
    }
    kv(o, "client_auth", &string(t.client_auth.as_str()));
    if let Some(n) = &t.server_name {
        kv(o, "server_name", &string(n));
    }
}

fn line(o: &mut String, text: &str) {
    o.push_str(text);
    o.push('\n');
}

fn kv(o: &mut String, k: &str, v: &str) {
    let _ = writeln!(o, "{k} = {v}");
}

/// A one-line TOML basic string for any value. toml's own encoder picks multi-line `"""`
/// strings for values with newlines, which are not valid as keys and would split `check`'s
/// one-setting-per-line output, so the escaping is done here.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key, bare when TOML allows it and quoted otherwise.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        string(k)
    }
}

/// What a secret is printed as. Long enough to be a valid bus secret itself, so the output still
/// parses back (CONTRACT section 10 refuses secrets under 16 bytes).
pub const REDACTED: &str = "<redacted secret>";

fn redacted(_: &Secret) -> String {
    string(REDACTED)
}

fn duration(d: std::time::Duration) -> String {
    string(&format_duration(d))
}

fn address(a: &Address) -> String {
    string(&a.to_string())
}

fn addresses<'a>(list: impl IntoIterator<Item = &'a Address>) -> String {
    let parts: Vec<String> = list.into_iter().map(address).collect();
    format!("[{}]", parts.join(", "))
}

fn string_map(map: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), string(v)))
        .collect();
    inline_table(&parts)
}

fn inline_table(parts: &[String]) -> String {
    if parts.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

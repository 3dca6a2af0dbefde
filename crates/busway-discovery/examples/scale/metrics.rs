//! etcd's own counters (`GET /metrics` on its client port), read before and after the churn:
//! they split a change's time into etcd's disk and the rest, and give the bytes etcd sent its
//! clients, which is the fan-out the arithmetic of docs/SCALING.md is about.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// One reading: every sample line, `name{labels}` → value.
#[derive(Debug, Default)]
pub struct Reading(HashMap<String, f64>);

/// Reads `endpoint`'s /metrics (`http://HOST:PORT`); an empty reading if that fails, since
/// these figures explain the others and are not worth failing the run for.
pub async fn read(endpoint: &str) -> Reading {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let get = async {
        let mut s = TcpStream::connect(hostport).await?;
        let req = format!("GET /metrics HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let Ok(Ok(text)) = timeout(Duration::from_secs(5), get).await else {
        return Reading::default();
    };
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect();
    Reading(samples)
}

impl Reading {
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// A histogram between `self` (before) and `after`: count, mean, and the bucket bounds
    /// under which half and 99 % of the observations fell, in ms.
    fn histogram(&self, after: &Reading, name: &str) -> Value {
        let delta = |s: &str| after.get(s) - self.get(s);
        let count = delta(&format!("{name}_count"));
        let sum = delta(&format!("{name}_sum"));
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = after
            .0
            .keys()
            .filter_map(|k| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                Some((le.parse().unwrap_or(f64::INFINITY), delta(k)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let under = |q: f64| {
            buckets
                .iter()
                .find(|(_, n)| *n >= q * count && count > 0.0)
                .map(|(le, _)| le * 1000.0)
        };
        json!({
            "count": count,
            "mean_ms": (count > 0.0).then(|| sum / count * 1000.0),
            "p50_under_ms": under(0.5),
            "p99_under_ms": under(0.99),
        })
    }

    /// What etcd did between `self` (before) and `after`, `secs` apart.
    pub fn between(&self, after: &Reading, secs: f64) -> Value {
        let rate = |s: &str| ((after.get(s) - self.get(s)) / secs).round();
        let watch = "grpc_server_msg_sent_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"}";
        let keepalive = "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"}";
        json!({
            "wal_fsync": self.histogram(after, "etcd_disk_wal_fsync_duration_seconds"),
            "backend_commit": self.histogram(after, "etcd_disk_backend_commit_duration_seconds"),
            "sent_bytes_per_s": rate("etcd_network_client_grpc_sent_bytes_total"),
            "received_bytes_per_s": rate("etcd_network_client_grpc_received_bytes_total"),
            "watch_messages_per_s": rate(watch),
            "keepalives_received_per_s": rate(keepalive),
            "slow_watchers": after.get("etcd_debugging_mvcc_slow_watcher_total"),
        })
    }
}

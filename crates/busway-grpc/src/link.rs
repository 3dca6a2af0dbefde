//! The task that keeps one upstream connected: one HTTP/2 connection carrying the long-lived
//! `bidirectionalStreaming` call, the `live` heartbeat call and the polled `ready` calls.
//!
//! When any of them fails the whole connection is torn down, the upstream's downstreams move to
//! healthy upstreams, what was lost is counted, and the connection is redialled with backoff.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use busway_config::Address;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::gateway::Gateway;
use crate::pb::upstream_peer_service_client::UpstreamPeerServiceClient;
use crate::queue::{call_queue, CallCounters};
use crate::text::cap_owned;
use crate::upstream::{Flag, Upstream};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection that stayed up this long starts the next backoff from the minimum again.
const STABLE: Duration = Duration::from_secs(10);
/// The largest message accepted from (and sent to) an upstream: gRPC's usual default.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// How long a removed upstream gets to take what was already queued for it.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

type Client = UpstreamPeerServiceClient<Channel>;

/// Runs until the upstream is removed or the gateway shuts down.
pub(crate) async fn run(gw: Arc<Gateway>, up: Arc<Upstream>) {
    // The one jittered backoff every retry of busway uses: gateways that lost the same
    // upstream do not all redial it in step.
    let mut backoff = busway_net::Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    // Whether the connection open when the link was stopped left nothing queued behind (true
    // if there was none: what earlier connections lost is counted already).
    let mut clean = true;
    while !up.removed() && !gw.is_closed() {
        let started = Instant::now();
        let (why, left_nothing) = connection(&gw, &up).await;
        for f in [Flag::Stream, Flag::Live, Flag::Ready] {
            gw.flag(&up, f, false);
        }
        if up.removed() || gw.is_closed() {
            clean = left_nothing;
            break;
        }
        up.stats.failures.fetch_add(1, Ordering::Relaxed);
        up.set_error(why.clone());
        if started.elapsed() >= STABLE {
            backoff.reset();
        }
        let wait = backoff.next_delay();
        tracing::warn!(service = %gw.service, upstream = %up.label, reason = %why, retry_in = ?wait, "upstream connection ended");
        tokio::select! {
            _ = sleep(wait) => {}
            _ = up.stop.notified() => {}
        }
    }
    tracing::debug!(service = %gw.service, upstream = %up.label, clean, "upstream link stopped");
    up.set_ended(clean);
}

/// One connection's life; returns why it ended, and whether nothing queued was left behind.
async fn connection(gw: &Gateway, up: &Arc<Upstream>) -> (String, bool) {
    let connecting = connect(&up.address, gw.settings().connect_timeout);
    let channel = tokio::select! {
        r = connecting => match r {
            Ok(c) => c,
            Err(e) => return (e, true),
        },
        // Nothing was queued yet: a removal or a flush need not wait for the dial.
        _ = up.stop.notified() => return ("removed while connecting".to_string(), true),
    };
    let client = UpstreamPeerServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (handle, outgoing) = call_queue();
    let counters = handle.counters().clone();
    let mut bidi_client = client.clone();
    let bidi = async move {
        let mut replies = bidi_client
            .bidirectional_streaming(outgoing)
            .await?
            .into_inner();
        while let Some(m) = replies.message().await? {
            gw.route(up, m);
        }
        Ok::<_, tonic::Status>(())
    };
    tokio::pin!(bidi);
    up.set_call(Some(handle.clone()));
    gw.flag(up, Flag::Stream, true);
    let why = tokio::select! {
        r = &mut bidi => match r {
            Ok(()) => "the upstream ended the bidirectionalStreaming call".to_string(),
            Err(s) => format!("bidirectionalStreaming: {}", status(&s)),
        },
        why = live(gw, up, client.clone(), &counters) => why,
        why = ready(gw, up, client.clone()) => why,
        _ = up.stop.notified() => {
            // Removed (or flushed at shutdown): no new messages; the request stream ends once
            // what is queued has been pulled, and the upstream ending its side of the call is
            // what says that everything before our end of stream reached it.
            gw.flag(up, Flag::Stream, false);
            up.set_call(None);
            handle.close();
            let by = up.drain_deadline(Instant::now() + DRAIN);
            return match timeout_at(by, &mut bidi).await {
                Ok(Ok(())) => ("removed".to_string(), true),
                Ok(Err(s)) => {
                    let lost = count_losses(gw, up, &counters);
                    (format!("removed; bidirectionalStreaming: {}", status(&s)), !lost)
                }
                Err(_) => {
                    let lost = count_losses(gw, up, &counters);
                    ("removed before its call ended".to_string(), !lost)
                }
            };
        }
    };
    gw.flag(up, Flag::Stream, false);
    up.set_call(None);
    let lost = count_losses(gw, up, &counters);
    (why, !lost)
}

/// Counts what the dead call may have lost: messages still queued (never sent) and messages sent
/// after the last heartbeat the upstream answered (sent, but not known to have arrived).
/// Returns whether there were any.
fn count_losses(gw: &Gateway, up: &Upstream, c: &CallCounters) -> bool {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Acquire);
    let queued = get(&c.enqueued).saturating_sub(get(&c.pulled));
    let queued_bytes = get(&c.enqueued_bytes).saturating_sub(get(&c.pulled_bytes));
    let unconfirmed = get(&c.pulled).saturating_sub(get(&c.confirmed));
    let unconfirmed_bytes = get(&c.pulled_bytes).saturating_sub(get(&c.confirmed_bytes));
    let s = &up.stats;
    s.lost_queued.fetch_add(queued, Ordering::Relaxed);
    s.lost_queued_bytes
        .fetch_add(queued_bytes, Ordering::Relaxed);
    s.unconfirmed.fetch_add(unconfirmed, Ordering::Relaxed);
    s.unconfirmed_bytes
        .fetch_add(unconfirmed_bytes, Ordering::Relaxed);
    if queued + unconfirmed > 0 {
        tracing::warn!(service = %gw.service, upstream = %up.label, queued, queued_bytes, unconfirmed, unconfirmed_bytes, "messages lost or unconfirmed with the upstream's call");
    }
    queued + unconfirmed > 0
}

async fn connect(addr: &Address, connect_timeout: Duration) -> Result<Channel, String> {
    let Address::Grpc { host, port, tls } = addr else {
        return Err(format!("{addr} is not a grpc:// address"));
    };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let scheme = if *tls { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{bracketed}:{port}"))
        .map_err(|e| format!("bad upstream address: {e}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(1 << 20))
        .initial_connection_window_size(Some(4 << 20));
    if *tls {
        // The system's roots (SSL_CERT_FILE and SSL_CERT_DIR are honoured), the host name as
        // the name to verify.
        let cfg = ClientTlsConfig::new()
            .with_native_roots()
            .domain_name(host.clone());
        ep = ep
            .tls_config(cfg)
            .map_err(|e| format!("TLS: {}", chain(&e)))?;
    }
    ep.connect()
        .await
        .map_err(|e| format!("connect: {}", chain(&e)))
}

/// Polls `ready` every `ready_interval`. Returns only if the upstream stops answering at all.
async fn ready(gw: &Gateway, up: &Arc<Upstream>, mut client: Client) -> String {
    loop {
        let s = gw.settings().grpc;
        match timeout(s.ready_timeout, client.ready(())).await {
            Ok(Ok(r)) => {
                let ready = r.into_inner().ready;
                if !ready {
                    up.set_error("it answers ready = false");
                }
                gw.flag(up, Flag::Ready, ready);
            }
            Ok(Err(st)) => {
                up.set_error(format!("ready: {}", status(&st)));
                gw.flag(up, Flag::Ready, false);
            }
            Err(_) => {
                up.set_error("ready: no answer within ready_timeout");
                gw.flag(up, Flag::Ready, false);
            }
        }
        sleep(s.ready_interval).await;
    }
}

/// Feeds the `live` call an `Empty` every `live_interval`; returns when no `LiveResult{live:
/// true}` came for `live_timeout`, or the call fails.
async fn live(gw: &Gateway, up: &Arc<Upstream>, mut client: Client, c: &CallCounters) -> String {
    let (beats, rx) = mpsc::channel::<()>(8);
    // What had been handed to the bidirectional call when each unanswered heartbeat was sent.
    let mut marks: VecDeque<(u64, u64)> = VecDeque::new();
    let beat = |marks: &mut VecDeque<(u64, u64)>| {
        if beats.try_send(()).is_ok() {
            marks.push_back((
                c.pulled.load(Ordering::Acquire),
                c.pulled_bytes.load(Ordering::Acquire),
            ));
        }
    };
    beat(&mut marks);
    let s = gw.settings().grpc;
    let mut deadline = Instant::now() + s.live_timeout;
    let call = client.live(tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(
        rx,
    ));
    let mut results = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(st)) => return format!("live: {}", status(&st)),
        Err(_) => return "live: no answer within live_timeout".to_string(),
    };
    let mut tick = tokio::time::interval_at(Instant::now() + s.live_interval, s.live_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => beat(&mut marks),
            m = results.message() => match m {
                Ok(Some(r)) => {
                    if let Some((n, b)) = marks.pop_front() {
                        c.confirmed.store(n, Ordering::Release);
                        c.confirmed_bytes.store(b, Ordering::Release);
                    }
                    if r.live {
                        deadline = Instant::now() + gw.settings().grpc.live_timeout;
                    }
                    gw.flag(up, Flag::Live, r.live);
                }
                Ok(None) => return "the upstream ended the live call".to_string(),
                Err(st) => return format!("live: {}", status(&st)),
            },
            _ = sleep_until(deadline) => {
                return format!("no LiveResult{{live: true}} for {:?} (live_timeout)", gw.settings().grpc.live_timeout);
            }
        }
    }
}

/// A status in one line, with the transport error behind it if there is one; cut to
/// [`crate::text::LOG_TEXT`], since the message is the upstream's.
fn status(s: &tonic::Status) -> String {
    use std::error::Error;
    let mut out = format!("{:?}: {}", s.code(), crate::text::cap(s.message()));
    if let Some(src) = s.source() {
        out.push_str(": ");
        out.push_str(&chain(src));
    }
    cap_owned(out)
}

/// An error and its sources, joined, cut to [`crate::text::LOG_TEXT`]. Sources stop being
/// added once the line is long enough: what follows would be cut anyway.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        if out.len() > crate::text::LOG_TEXT * 4 {
            break;
        }
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    cap_owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_upstream_says_is_cut_short() {
        let st = tonic::Status::internal("é".repeat(64 * 1024));
        let line = status(&st);
        assert_eq!(line.chars().count(), crate::text::LOG_TEXT + 1, "{line}");
        assert!(
            line.starts_with("Internal: éé") && line.ends_with('…'),
            "{line}"
        );
    }
}

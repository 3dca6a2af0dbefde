//! One pass over a multi-link session's carriers, under the session's lock: what arrived goes
//! into the session, what it hands out goes onto the transports, lost transports are noticed
//! (their bytes then go again on the others), an opener joins the transports of its pool that
//! are not carriers yet, and a session whose bytes are all acknowledged ends its carriers.
//!
//! A peer whose acknowledgement or bytes the session finds impossible (docs/PROTOCOL.md, 9.5)
//! loses that transport: it fails with `protocol` and the reason, the way the connection fails
//! for its own checks, and the session goes on over its other transports.

use std::sync::Arc;
use std::task::Waker;

use busway_proto::{LinkId, ResetCode, StreamError};

use super::{Carrier, Inner};
use crate::bus::stream::StreamEnd;
use crate::bus::transport::Transport;

/// Services the session; returns the wakers to wake once its lock is released (transport
/// drivers with something to send). `waker` is registered on every carrier.
pub(super) fn service(g: &mut Inner, waker: &Waker) -> Vec<Waker> {
    let mut wake = Vec::new();
    if g.done || g.end.is_some() {
        return wake;
    }
    if !g.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
        g.waker = Some(waker.clone());
    }
    take_in(g, waker, &mut wake);
    if g.end.is_some() {
        return wake;
    }
    join(g);
    hand_out(g, &mut wake);
    if g.ms.is_done() {
        for c in g.links.iter().flatten() {
            c.t.with(|tg| {
                tg.conn.end_carrier(c.id);
                tg.wakers.remove(&c.id);
            });
        }
        g.done = true;
    }
    wake
}

/// Takes pieces and acknowledgements off every carrier, and notices lost transports.
fn take_in(g: &mut Inner, waker: &Waker, wake: &mut Vec<Waker>) {
    let Inner { ms, links, end, .. } = g;
    let mut lost: Vec<(LinkId, String)> = Vec::new();
    for (link, slot) in links.iter().enumerate() {
        let Some(c) = slot else { continue };
        let mut tg = c.t.lock();
        if let Some(why) = &tg.closed {
            lost.push((link, why.to_string()));
            continue;
        }
        let mut verdict = Ok(());
        loop {
            match tg.conn.read_piece(c.id, usize::MAX) {
                Ok(p) => {
                    verdict = ms.on_piece(p);
                    if verdict.is_err() {
                        break;
                    }
                }
                Err(StreamError::Blocked) => break,
                Err(StreamError::Reset { code, reason }) => {
                    end.get_or_insert(StreamEnd::Reset(code, reason));
                    break;
                }
                Err(e) => {
                    lost.push((link, e.to_string()));
                    break;
                }
            }
        }
        if let (Ok(()), Some((offset, fin))) = (&verdict, tg.conn.take_ack(c.id)) {
            verdict = ms.on_ack(offset, fin);
        }
        if let Err(e) = verdict {
            tracing::warn!(peer = %c.t.peer, node = %busway_proto::clip(&c.t.node(), 128), error = %e, "multi-link session: the peer broke the protocol; closing that transport");
            let e = tg.conn.fail_link(e);
            lost.push((link, e.to_string()));
            wake.extend(tg.driver.clone());
            continue;
        }
        let w = tg.wakers.entry(c.id).or_default();
        for slot in [&mut w.read, &mut w.write] {
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
    }
    for (link, why) in lost {
        if let Some(c) = links[link].take() {
            c.t.with(|tg| tg.wakers.remove(&c.id));
            if !ms.lose_link(link) {
                end.get_or_insert(StreamEnd::Closed(format!(
                    "every transport of the multi-link session is gone, the last: {why}"
                )));
            } else {
                tracing::info!(peer = %c.t.peer, reason = %why, left = ms.links().len(), "multi-link session lost a transport; its bytes go again on the others");
            }
        }
    }
    if let Some(e) = end.clone() {
        // The peer reset the session on one carrier, or it has none left: the others go too.
        let reason = match &e {
            StreamEnd::Reset(_, r) => r.clone(),
            StreamEnd::Closed(r) => r.clone(),
        };
        reset_carriers(links, ResetCode::Cancel, &reason);
    }
}

/// Hands the session's pieces and acknowledgements to the carriers it chose.
fn hand_out(g: &mut Inner, wake: &mut Vec<Waker>) {
    let Inner { ms, links, .. } = g;
    let carrier = |link: LinkId| links.get(link).and_then(Option::as_ref);
    loop {
        let room = |link: LinkId| {
            carrier(link).map_or(0, |c| {
                let mut tg = c.t.lock();
                match &tg.closed {
                    Some(_) => 0,
                    None => tg.conn.capacity(c.id).unwrap_or(0),
                }
            })
        };
        let Some((link, piece)) = ms.poll_piece(room) else {
            break;
        };
        if let Some(c) = carrier(link) {
            send(&c.t, wake, |tg| {
                let _ = tg.conn.send_piece(c.id, piece);
            });
        }
    }
    while let Some((link, offset, fin)) = ms.poll_ack() {
        if let Some(c) = carrier(link) {
            send(&c.t, wake, |tg| {
                let _ = tg.conn.send_ack(c.id, offset, fin);
            });
        }
    }
}

/// Runs `f` under the transport's lock and notes its driver if it has something to send.
fn send(t: &Transport, wake: &mut Vec<Waker>, f: impl FnOnce(&mut crate::bus::transport::Inner)) {
    let mut tg = t.lock();
    f(&mut tg);
    wake.extend(tg.driver_to_wake());
}

/// The opener, once the peer confirmed the session: a carrier on every usable transport of
/// the pool that announced multilink and is not one yet (a transport that came up later
/// included).
fn join(g: &mut Inner) {
    let Inner {
        ms, links, joiner, ..
    } = g;
    let Some(j) = joiner.as_mut().filter(|_| ms.is_confirmed()) else {
        return;
    };
    let Some(pool) = j.pool.upgrade() else {
        return;
    };
    let version = pool.version();
    if j.seen == Some(version) {
        return;
    }
    j.seen = Some(version);
    let fresh: Vec<Arc<Transport>> = pool
        .live()
        .iter()
        .filter(|t| t.usable() && !links.iter().flatten().any(|c| Arc::ptr_eq(&c.t, t)))
        .cloned()
        .collect();
    for t in fresh {
        let opened = t.with(|tg| match (&tg.closed, tg.conn.multilink()) {
            (None, true) => tg.conn.open_carrier(j.params.clone(), j.key, true).ok(),
            _ => None,
        });
        if let Some(id) = opened {
            let link = links.len();
            links.push(Some(Carrier { t, id }));
            ms.add_link(link);
        }
    }
}

/// Ends the session on every transport with a Reset.
pub(super) fn abort(g: &mut Inner, code: ResetCode, reason: &str) {
    if g.done || g.end.is_some() {
        return;
    }
    reset_carriers(&mut g.links, code, reason);
    g.end = Some(StreamEnd::Closed(format!("stream closed: {reason}")));
}

fn reset_carriers(links: &mut [Option<Carrier>], code: ResetCode, reason: &str) {
    for c in links.iter_mut().filter_map(Option::take) {
        c.t.with(|tg| {
            tg.conn.reset(c.id, code, reason);
            tg.wakers.remove(&c.id);
        });
    }
}

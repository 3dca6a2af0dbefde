//! Where multi-link sessions begin: the opening end's [`open`], and at the accepting end the
//! [`Registry`] that turns a first carrier into a session and lets the others join it.
//!
//! A join is looked up by the key *and* the peer that proved itself on the transport it
//! arrived on, so one peer can never join another's session, and a join for no live session is
//! refused rather than starting one (it may arrive after its session ended).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use busway_proto::{MultiStream, OpenParams, ResetCode, LINK_KEY_LEN};

use super::{Carrier, Joiner, MultiSession};
use crate::bus::driver::Opened;
use crate::bus::pool::PeerPool;
use crate::bus::stream::BusStream;
use crate::bus::transport::Transport;

/// A session's name at the accepting end: who opened it (trust level and node, as its
/// transport's handshake proved them) and its key.
pub(crate) type Key = (String, [u8; LINK_KEY_LEN]);

/// The live multi-link sessions this node accepted.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<Key, Weak<MultiSession>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Weak<MultiSession>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions listed now (live or just ended).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes out a session that ended (its last handle is gone).
    pub(super) fn remove(&self, key: &Key) {
        let mut m = self.lock();
        if m.get(key).is_some_and(|w| w.strong_count() == 0) {
            m.remove(key);
        }
    }

    /// A stream the peer opened: a plain one is handed back as it is; a first carrier becomes
    /// a session, handed back as one stream for the node to serve; a join is added to its
    /// session (or refused) and handed back as nothing.
    pub fn route(self: &Arc<Self>, opened: Opened) -> Option<Opened> {
        let Some(link) = opened.open.link.clone() else {
            return Some(opened);
        };
        let Opened { open, stream } = opened;
        let Ok(key) = <[u8; LINK_KEY_LEN]>::try_from(&link.session[..]) else {
            // The connection checked the length: unreachable, but not worth a panic.
            stream.reset(ResetCode::Protocol, "bad session key");
            return None;
        };
        let (t, id) = stream.into_parts();
        let key: Key = (peer_of(&t), key);
        if link.join {
            let session = self.lock().get(&key).and_then(Weak::upgrade);
            match session {
                Some(s) => s.join(Carrier { t, id }),
                None => t.with(|g| g.conn.reset(id, ResetCode::Refused, "no such session")),
            }
            return None;
        }
        let mut m = self.lock();
        if m.get(&key).is_some_and(|w| w.strong_count() > 0) {
            drop(m);
            t.with(|g| g.conn.reset(id, ResetCode::Refused, "session key in use"));
            return None;
        }
        let (ours, theirs) = windows(&t);
        let ms = MultiStream::accept(ours, theirs, 0);
        let listed = Some((Arc::downgrade(self), key.clone()));
        let session = Arc::new(MultiSession::new(
            ms,
            Carrier { t: t.clone(), id },
            None,
            listed,
        ));
        m.insert(key, Arc::downgrade(&session));
        drop(m);
        session.kick();
        Some(Opened {
            open,
            stream: BusStream::multi(t, id, session),
        })
    }
}

/// Opens a multi-link session on `t`, one of `pool`'s transports; it joins the others once the
/// peer confirms it.
pub(crate) fn open(
    pool: &Arc<PeerPool>,
    t: &Arc<Transport>,
    params: OpenParams,
) -> Result<BusStream, String> {
    let key: [u8; LINK_KEY_LEN] = rand::random();
    let id = t.with(|g| {
        if let Some(why) = &g.closed {
            return Err(format!("transport closed: {why}"));
        }
        g.conn
            .open_carrier(params.clone(), key, false)
            .map_err(|e| e.to_string())
    })?;
    let (ours, theirs) = windows(t);
    let joiner = Joiner {
        pool: Arc::downgrade(pool),
        params,
        key,
        seen: None,
    };
    let ms = MultiStream::open(ours, theirs, 0);
    let session = Arc::new(MultiSession::new(
        ms,
        Carrier { t: t.clone(), id },
        Some(joiner),
        None,
    ));
    Ok(BusStream::multi(t.clone(), id, session))
}

/// Our stream window and the peer's, from the transport's handshake.
fn windows(t: &Transport) -> (u32, u32) {
    let g = t.lock();
    let ours = g.conn.config().stream_window;
    let theirs = g
        .conn
        .peer()
        .map_or(busway_proto::MIN_STREAM_WINDOW, |p| p.stream_window);
    (ours, theirs)
}

/// Who the peer on `t` proved to be.
fn peer_of(t: &Transport) -> String {
    let trust = t.trust().map_or("none", |t| t.label());
    format!("{trust}/{}", t.node())
}

//! The stream API an application (a session) uses, shaped like quinn-proto's streams:
//! [`Connection::read`] gives bytes, the fin, the peer's reset or `Blocked`;
//! [`Connection::write`] takes what credit allows; [`Connection::release`] returns credit once
//! the bytes are really gone; [`Connection::stop`] is the application letting go.
//!
//! Credit goes back to the peer only on `release` — per stream and for the transport — so what
//! a node holds for its sessions is bounded by the windows it granted, whatever the peer or
//! a slow client does: at most `stream_window` per stream and `conn_window` per transport.

use bytes::Bytes;

use crate::config::OpenParams;
use crate::connection::{truncate, Connection};
use crate::error::StreamError;
use crate::event::Event;
use crate::frame::{Body, Data, Frame, Open, Reset, Window};
use crate::reset::ResetCode;
use crate::stream::Stream;

impl Connection {
    /// Opens a stream; returns its id. Data may follow at once, within the peer's
    /// `stream_window` ([`Connection::capacity`]). `Blocked` while the handshake has not got
    /// far enough (wait for [`crate::Event::Established`]); `Closed` once the transport failed
    /// or either side said GoAway.
    pub fn open(&mut self, p: OpenParams) -> Result<u64, StreamError> {
        self.open_stream(p, None)
    }

    /// [`Connection::open`], for a plain stream (`link: None`) or a multi-link carrier.
    pub(crate) fn open_stream(
        &mut self,
        p: OpenParams,
        link: Option<crate::frame::Link>,
    ) -> Result<u64, StreamError> {
        if !self.can_open() {
            let over = self.error.is_some() || self.local_goaway || self.peer_goaway;
            return Err(if over {
                StreamError::Closed
            } else {
                StreamError::Blocked
            });
        }
        let send_credit = self.initial_send_credit();
        let open = Open {
            stream: self.streams.next_local_id(),
            service: p.service,
            session_id: p.session_id,
            client: p.client,
            mode: p.mode,
            labels: p.labels.into_iter().collect(),
            hops: u32::try_from(p.path.len()).unwrap_or(u32::MAX),
            path: p.path,
            to: p.to,
            link,
        };
        let carrier = open.link.is_some();
        let frame = Frame::new(Body::Open(open));
        if crate::codec::encoded_len(&frame) > self.peer_max_frame() {
            return Err(StreamError::Misuse(
                "open frame larger than the peer accepts",
            ));
        }
        let stream = if carrier {
            Stream::carrier()
        } else {
            Stream::new(send_credit, self.config.stream_window)
        };
        let id = self.streams.open_local(stream);
        if let Some(body) = frame.body {
            self.out.push_control(body);
        }
        Ok(id)
    }

    /// The next bytes of stream `id`, at most `max`: `Ok(None)` is the peer's fin (once every
    /// byte before it was read). The bytes count against the windows until
    /// [`Connection::release`]d.
    pub fn read(&mut self, id: u64, max: usize) -> Result<Option<Bytes>, StreamError> {
        let s = self.live_stream(id)?;
        if s.carrier.is_some() {
            return Err(StreamError::Misuse("read on a carrier: use read_piece"));
        }
        if let Some(r) = &s.reset {
            return Err(StreamError::Reset {
                code: r.0,
                reason: r.1.clone(),
            });
        }
        if let Some(b) = s.recv.pop(max) {
            s.unreleased += b.len() as u64;
            return Ok(Some(b));
        }
        if s.recv_fin {
            return Ok(None);
        }
        Err(StreamError::Blocked)
    }

    /// The application is done with `n` bytes it read (they were written out): the peer may
    /// send that much more, on this stream and on the transport.
    pub fn release(&mut self, id: u64, n: usize) {
        let window = self.config.stream_window;
        let Ok(s) = self.live_stream(id) else { return };
        let (n, grant) = s.release(n, window);
        if let Some(credit) = grant {
            self.out
                .push_control(Body::Window(Window { stream: id, credit }));
        }
        self.return_conn_credit(n);
    }

    /// How many bytes [`Connection::write`] would take now on stream `id`, or `Blocked` while
    /// the peer's credit is used up or the transport's send backlog is full.
    pub fn capacity(&mut self, id: u64) -> Result<usize, StreamError> {
        let max_chunk = self.max_chunk;
        let s = self.writable_stream(id)?;
        // A carrier has no stream credit: the session's window paces it.
        let credit = match s.carrier {
            Some(_) => max_chunk.max(1) * 4,
            None => (s.send_credit as usize).min(max_chunk.max(1) * 4),
        };
        if credit == 0 || !self.out.has_room() {
            return Err(StreamError::Blocked);
        }
        Ok(credit)
    }

    /// Queues the front of `data` on stream `id`, as much as its credit allows, split into
    /// frames the peer accepts; returns how many bytes it took (the rest stays in `data`).
    /// `Blocked` when no credit is left. The transport's backlog is checked by
    /// [`Connection::capacity`], not here: a caller that asked may write what it was told.
    pub fn write(&mut self, id: u64, data: &mut Bytes) -> Result<usize, StreamError> {
        let max_chunk = self.max_chunk.max(1);
        let s = self.writable_stream(id)?;
        if s.carrier.is_some() {
            return Err(StreamError::Misuse("write on a carrier: use send_piece"));
        }
        let n = (s.send_credit as usize).min(data.len());
        if n == 0 {
            return if data.is_empty() {
                Ok(0)
            } else {
                Err(StreamError::Blocked)
            };
        }
        s.send_credit -= n as u64;
        let mut offset = s.send_offset;
        s.send_offset += n as u64;
        let mut taken = data.split_to(n);
        while !taken.is_empty() {
            let payload = taken.split_to(taken.len().min(max_chunk));
            let len = payload.len() as u64;
            self.out.push_data(Data {
                stream: id,
                offset,
                payload,
                fin: false,
            });
            offset += len;
        }
        Ok(n)
    }

    /// Half-closes stream `id`: the peer reads its fin after every byte written before.
    pub fn finish(&mut self, id: u64) -> Result<(), StreamError> {
        let s = self.writable_stream(id)?;
        if s.carrier.is_some() {
            return Err(StreamError::Misuse(
                "finish on a carrier: send a piece with fin",
            ));
        }
        s.send_fin = true;
        let offset = s.send_offset;
        self.out.push_data(Data {
            stream: id,
            offset,
            payload: Bytes::new(),
            fin: true,
        });
        Ok(())
    }

    /// Aborts stream `id` both ways and forgets it: the peer gets a Reset, queued data for it is
    /// dropped, and what it held is credited back to the transport.
    pub fn reset(&mut self, id: u64, code: ResetCode, reason: &str) {
        if self.error.is_some() {
            return;
        }
        let Some(s) = self.streams.remove(id) else {
            return;
        };
        self.forget(id, &s);
        if s.reset.is_none() {
            self.out.push_control(Body::Reset(Reset {
                stream: id,
                code: code as u32,
                reason: truncate(reason),
            }));
        }
    }

    /// The application let go of stream `id` (its handle was dropped). A stream that ended
    /// both ways is simply forgotten — its queued bytes still go out; one that did not is
    /// reset (`cancel`), so the other node closes its end too.
    pub fn stop(&mut self, id: u64) {
        if self.error.is_some() {
            return;
        }
        let ended = match self.streams.get(id) {
            Some(s) => s.reset.is_some() || (s.send_fin && s.recv_fin),
            None => return,
        };
        if ended {
            if let Some(s) = self.streams.remove(id) {
                let held = s.held();
                self.return_conn_credit(held);
            }
        } else {
            self.reset(id, ResetCode::Cancel, "stream closed");
        }
    }

    /// Drops what a removed stream still had: its queued data and the credit it held.
    pub(crate) fn forget(&mut self, id: u64, s: &Stream) {
        self.out.purge(id);
        self.return_conn_credit(s.held());
    }

    /// The peer reset stream `id`: it keeps only the reason, so the application learns it.
    pub(crate) fn on_peer_reset(&mut self, id: u64, code: ResetCode, reason: String) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        let carried = s.carrier.as_mut().map_or(0, |c| c.clear());
        let held = (s.recv.clear() + carried) as u64 + std::mem::take(&mut s.unreleased);
        s.reset = Some(Box::new((code, reason)));
        self.out.purge(id);
        self.return_conn_credit(held);
        self.events.push_back(Event::Readable { id });
        self.events.push_back(Event::Writable { id });
    }

    pub(crate) fn live_stream(&mut self, id: u64) -> Result<&mut Stream, StreamError> {
        if self.error.is_some() {
            return Err(StreamError::Closed);
        }
        self.streams.get_mut(id).ok_or(StreamError::Closed)
    }

    pub(crate) fn writable_stream(&mut self, id: u64) -> Result<&mut Stream, StreamError> {
        let s = self.live_stream(id)?;
        if let Some(r) = &s.reset {
            return Err(StreamError::Reset {
                code: r.0,
                reason: r.1.clone(),
            });
        }
        if s.send_fin {
            return Err(StreamError::Misuse("write after finish"));
        }
        Ok(s)
    }

    fn peer_max_frame(&self) -> usize {
        let peer = self
            .peer
            .as_ref()
            .map_or(crate::MAX_FRAME_LEN as u32, |p| p.max_frame);
        (peer as usize).min(crate::MAX_FRAME_LEN)
    }
}

//! Frames received after the handshake: streams, credit, liveness and draining.

use std::time::{Duration, Instant};

use crate::carrier::{max_runs, LINK_KEY_LEN};
use crate::connection::{Connection, MAX_STREAMS};
use crate::error::ProtoError;
use crate::event::Event;
use crate::frame::{Ack, Body, Data, Open, Reset, Window};
use crate::reset::ResetCode;
use crate::stream::{Lookup, Stream};
use crate::MAX_DATA_PAYLOAD;

impl Connection {
    pub(crate) fn on_established_frame(
        &mut self,
        body: Option<Body>,
        now: Instant,
    ) -> Result<(), ProtoError> {
        match body {
            // A frame type from a newer version: skipping it keeps new types compatible.
            None => Ok(()),
            Some(Body::Hello(_) | Body::Challenge(_) | Body::Auth(_) | Body::Accept(_)) => Err(
                ProtoError::Protocol("handshake frame after the handshake".into()),
            ),
            Some(Body::Ticket(t)) => self.on_ticket(t),
            Some(Body::Open(o)) => self.on_open(o),
            Some(Body::Data(d)) => self.on_data(d),
            Some(Body::Window(w)) => self.on_window(w),
            Some(Body::Reset(r)) => self.on_reset(r),
            Some(Body::Ack(a)) => self.on_ack(a),
            Some(Body::Ping(p)) => {
                self.pings_seen += 1;
                self.out.push_pong(p.timepoint_us);
                Ok(())
            }
            Some(Body::Pong(p)) => {
                // A timepoint we never sent (in the future, or overflowing) measures nothing.
                let sent = self
                    .created
                    .checked_add(Duration::from_micros(p.timepoint_us));
                if let Some(rtt) = sent.and_then(|s| now.checked_duration_since(s)) {
                    self.rtt = Some(rtt);
                    self.events.push_back(Event::Rtt(rtt));
                }
                Ok(())
            }
            Some(Body::GoAway(g)) => {
                if !self.peer_goaway {
                    self.peer_goaway = true;
                    let reason = crate::clip(&g.reason, crate::MAX_REASON_LEN).to_owned();
                    self.events.push_back(Event::GoAway { reason });
                }
                Ok(())
            }
        }
    }

    fn on_open(&mut self, open: Open) -> Result<(), ProtoError> {
        let id = open.stream;
        self.streams
            .note_peer_open(id)
            .map_err(ProtoError::Protocol)?;
        let refusal = if self.local_goaway {
            Some((ResetCode::Shutdown, "going away"))
        } else if self.streams.len() >= MAX_STREAMS {
            Some((ResetCode::Refused, "too many streams"))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            self.refusals += 1;
            self.out.push_control(Body::Reset(Reset {
                stream: id,
                code: code as u32,
                reason: reason.into(),
            }));
            return Ok(());
        }
        let stream = match &open.link {
            Some(link) => {
                if !self.multilink() {
                    return Err(ProtoError::Protocol(format!(
                        "open of carrier {id} without multilink negotiated"
                    )));
                }
                if link.session.len() != LINK_KEY_LEN {
                    return Err(ProtoError::Protocol(format!(
                        "open of carrier {id} with a session key of {} bytes",
                        link.session.len()
                    )));
                }
                Stream::carrier()
            }
            None => {
                let send_credit = self.peer.as_ref().map_or(0, |p| p.stream_window);
                Stream::new(send_credit, self.config.stream_window)
            }
        };
        self.streams.insert(id, stream);
        self.events.push_back(Event::Opened { id, open });
        Ok(())
    }

    fn on_data(&mut self, d: Data) -> Result<(), ProtoError> {
        let len = d.payload.len();
        if len > MAX_DATA_PAYLOAD {
            return Err(ProtoError::Protocol(format!(
                "data payload of {len} bytes exceeds {MAX_DATA_PAYLOAD}"
            )));
        }
        if len as u64 > self.conn_recv_credit {
            return Err(ProtoError::Protocol(format!(
                "transport window exceeded: {len} bytes with {} of credit",
                self.conn_recv_credit
            )));
        }
        self.conn_recv_credit -= len as u64;
        let runs = max_runs(self.config.stream_window);
        let straggler = match self.streams.lookup(d.stream) {
            Lookup::Never => {
                return Err(ProtoError::Protocol(format!(
                    "data on stream {} that was never opened",
                    d.stream
                )))
            }
            Lookup::Closed => true,
            Lookup::Live(s) if s.carrier.is_some() => match s.carrier.as_mut() {
                Some(c) if s.reset.is_none() => {
                    c.push(d.offset, d.payload, d.fin, runs)
                        .map_err(|e| ProtoError::Protocol(format!("carrier {}: {e}", d.stream)))?;
                    false
                }
                _ => true,
            },
            Lookup::Live(s) => {
                s.on_data(d.offset, len, d.fin)
                    .map_err(|e| ProtoError::Protocol(format!("stream {}: {e}", d.stream)))?;
                if s.reset.is_some() {
                    true
                } else {
                    s.recv.push(d.payload);
                    false
                }
            }
        };
        if straggler {
            // After a reset: dropped, but the transport credit it used is ours to give back,
            // or the peer would slowly run out.
            self.return_conn_credit(len as u64);
        } else if len > 0 || d.fin {
            self.events.push_back(Event::Readable { id: d.stream });
        }
        Ok(())
    }

    fn on_window(&mut self, w: Window) -> Result<(), ProtoError> {
        if w.stream == 0 {
            self.out.add_conn_credit(w.credit);
            return Ok(());
        }
        if let Some(s) = self.streams.target(w.stream, "window for")? {
            s.send_credit = s.send_credit.saturating_add(w.credit.into());
            if !s.send_fin && w.credit > 0 {
                self.events.push_back(Event::Writable { id: w.stream });
            }
        }
        Ok(())
    }

    /// A multi-link session's acknowledgement: kept (the highest) until the session takes it
    /// and judges it; only a carrier is acknowledged.
    fn on_ack(&mut self, a: Ack) -> Result<(), ProtoError> {
        let Some(s) = self.streams.target(a.stream, "ack for")? else {
            return Ok(());
        };
        let Some(c) = s.carrier.as_mut() else {
            return Err(ProtoError::Protocol(format!(
                "ack for stream {}, which is not a carrier",
                a.stream
            )));
        };
        if s.reset.is_none() {
            c.ack = Some(match c.ack {
                Some((offset, fin)) => (offset.max(a.offset), fin || a.fin),
                None => (a.offset, a.fin),
            });
            self.events.push_back(Event::Writable { id: a.stream });
        }
        Ok(())
    }

    fn on_reset(&mut self, r: Reset) -> Result<(), ProtoError> {
        match self.streams.target(r.stream, "reset of")? {
            Some(s) if s.reset.is_none() => {
                let reason = crate::clip(&r.reason, crate::MAX_REASON_LEN).to_owned();
                self.on_peer_reset(r.stream, ResetCode::from_u32(r.code), reason);
            }
            _ => {}
        }
        Ok(())
    }
}

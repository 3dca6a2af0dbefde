//! Frames waiting to be written, and the peer's transport-level credit that paces Data.
//!
//! Control frames go first and are never held back: they are small, and a Window or Pong stuck
//! behind Data would stall both sides. Data leaves in FIFO order only while the peer's
//! transport window allows, so the peer never has more payload in flight than it granted.
//!
//! Both queues are bounded. Data by [`SEND_BACKLOG`]: a stream may add to it only while it is
//! below that (`has_room`), and is told when it drains (`Event::SendRoom`). Control by the
//! driver, which stops reading the peer while more than [`MAX_CONTROL_BACKLOG`] bytes of it wait
//! (`Connection::wants_input`): every control frame we queue answers something the peer sent or
//! grants credit for bytes it sent, so a peer that floods us and never reads is bounded at once.
//! Pongs are coalesced to the latest ping, so pings alone cannot fill it.

use std::collections::VecDeque;

use crate::codec::encoded_len;
use crate::frame::{Body, Data, Frame, Pong};

/// Payload bytes accepted from streams and not yet handed to the driver, per transport.
pub const SEND_BACKLOG: usize = 512 * 1024;

/// Control bytes waiting above which the driver stops reading the peer.
pub const MAX_CONTROL_BACKLOG: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Frame>,
    control_bytes: usize,
    /// The latest ping not answered yet: one Pong answers any number of Pings.
    pong: Option<u64>,
    data: VecDeque<Data>,
    data_bytes: usize,
    /// Payload bytes the peer lets us have in flight on the whole transport.
    conn_credit: u64,
    /// A stream found the backlog full and waits to hear it drained.
    room_wanted: bool,
}

impl Outbox {
    pub fn push_control(&mut self, body: Body) {
        let frame = Frame::new(body);
        self.control_bytes += encoded_len(&frame);
        self.control.push_back(frame);
    }

    /// Queues a control frame before every other one: the Auth of a resumption that fell back
    /// to a full handshake, which must precede what it re-sends.
    pub fn push_control_front(&mut self, body: Body) {
        let frame = Frame::new(body);
        self.control_bytes += encoded_len(&frame);
        self.control.push_front(frame);
    }

    /// Puts frames already taken back at the front of their queues, in their order, and gives
    /// back the transport credit their Data used: the acceptor dropped them unread (0-RTT
    /// frames of a refused ticket), so they go again.
    pub fn requeue_front(&mut self, frames: Vec<Frame>) {
        for frame in frames.into_iter().rev() {
            match frame.body {
                Some(Body::Data(d)) => {
                    self.conn_credit += d.payload.len() as u64;
                    self.data_bytes += d.payload.len();
                    self.data.push_front(d);
                }
                Some(body) => self.push_control_front(body),
                None => {}
            }
        }
    }

    pub fn push_pong(&mut self, timepoint_us: u64) {
        self.pong = Some(timepoint_us);
    }

    pub fn push_data(&mut self, data: Data) {
        self.data_bytes += data.payload.len();
        self.data.push_back(data);
    }

    pub fn add_conn_credit(&mut self, credit: u32) {
        self.conn_credit = self.conn_credit.saturating_add(credit.into());
    }

    /// Whether a stream may queue more data now; if not, remembers that one waits.
    pub fn has_room(&mut self) -> bool {
        let room = self.data_bytes < SEND_BACKLOG;
        self.room_wanted |= !room;
        room
    }

    /// True once, when the backlog drained below half after a stream found it full.
    pub fn take_room_event(&mut self) -> bool {
        if self.room_wanted && self.data_bytes < SEND_BACKLOG / 2 {
            self.room_wanted = false;
            return true;
        }
        false
    }

    /// Drops queued Data of a reset stream: the peer would ignore it anyway.
    pub fn purge(&mut self, stream: u64) {
        let mut dropped = 0;
        self.data.retain(|d| {
            let keep = d.stream != stream;
            if !keep {
                dropped += d.payload.len();
            }
            keep
        });
        self.data_bytes -= dropped;
    }

    /// Forgets everything, used when the connection failed.
    pub fn clear(&mut self) {
        self.control.clear();
        self.control_bytes = 0;
        self.pong = None;
        self.data.clear();
        self.data_bytes = 0;
    }

    pub fn control_backlog(&self) -> usize {
        self.control_bytes
    }

    pub fn wants_transmit(&self) -> bool {
        !self.control.is_empty()
            || self.pong.is_some()
            || self
                .data
                .front()
                .is_some_and(|d| d.payload.is_empty() || self.conn_credit > 0)
    }

    /// Bytes of Data payload queued (waiting for transport credit or for the driver).
    pub fn queued_data(&self) -> usize {
        self.data_bytes
    }

    /// Moves frames ready to go into `out`: every control frame, then Data while the peer's
    /// transport credit lasts, up to about `max` payload bytes.
    pub fn take(&mut self, out: &mut Vec<Frame>, max: usize) {
        out.extend(self.control.drain(..));
        self.control_bytes = 0;
        if let Some(timepoint_us) = self.pong.take() {
            out.push(Frame::new(Body::Pong(Pong { timepoint_us })));
        }
        let mut taken = 0usize;
        while taken < max {
            let Some(front) = self.data.front_mut() else {
                break;
            };
            let len = front.payload.len() as u64;
            let part = if len <= self.conn_credit {
                self.data.pop_front().unwrap_or_default()
            } else if self.conn_credit > 0 {
                // Send what fits; the rest keeps its place at the head of the queue.
                let n = self.conn_credit as usize;
                let part = Data {
                    stream: front.stream,
                    offset: front.offset,
                    payload: front.payload.split_to(n),
                    fin: false,
                };
                front.offset += n as u64;
                part
            } else {
                break;
            };
            self.conn_credit -= part.payload.len() as u64;
            self.data_bytes -= part.payload.len();
            taken += part.payload.len();
            out.push(Frame::new(Body::Data(part)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Ping;
    use bytes::Bytes;

    fn data(stream: u64, len: usize, fin: bool) -> Data {
        Data {
            stream,
            offset: 0,
            payload: Bytes::from(vec![1; len]),
            fin,
        }
    }

    fn take(o: &mut Outbox) -> Vec<Frame> {
        let mut v = Vec::new();
        o.take(&mut v, usize::MAX);
        v
    }

    #[test]
    fn data_waits_for_credit_and_is_split_at_its_edge() {
        let mut o = Outbox::default();
        o.push_data(data(1, 10, true));
        o.push_control(Body::Ping(Ping { timepoint_us: 1 }));
        assert!(o.wants_transmit());
        assert_eq!(take(&mut o).len(), 1, "only the ping: no credit yet");
        assert!(!o.wants_transmit());
        o.add_conn_credit(4);
        let frames = take(&mut o);
        let Some(Body::Data(d)) = &frames[0].body else {
            panic!("data expected")
        };
        assert_eq!((d.offset, d.payload.len(), d.fin), (0, 4, false));
        assert_eq!(o.queued_data(), 6);
        o.add_conn_credit(100);
        let frames = take(&mut o);
        let Some(Body::Data(d)) = &frames[0].body else {
            panic!("data expected")
        };
        assert_eq!((d.offset, d.payload.len(), d.fin), (4, 6, true));
        assert_eq!(o.conn_credit, 94);
        assert_eq!(o.queued_data(), 0);
    }

    #[test]
    fn empty_fin_needs_no_credit_and_purge_drops_one_stream() {
        let mut o = Outbox::default();
        o.push_data(data(1, 5, false));
        o.push_data(data(3, 0, true));
        o.purge(1);
        assert_eq!(o.queued_data(), 0);
        assert!(o.wants_transmit());
        let frames = take(&mut o);
        assert_eq!(frames.len(), 1);
        assert!(matches!(&frames[0].body, Some(Body::Data(d)) if d.stream == 3 && d.fin));
    }

    #[test]
    fn pongs_coalesce_to_the_latest_ping() {
        let mut o = Outbox::default();
        for t in 0..1000 {
            o.push_pong(t);
        }
        assert_eq!(o.control_backlog(), 0);
        let frames = take(&mut o);
        assert_eq!(frames.len(), 1);
        assert!(matches!(&frames[0].body, Some(Body::Pong(p)) if p.timepoint_us == 999));
    }

    #[test]
    fn the_backlog_refuses_then_tells_when_it_drained() {
        let mut o = Outbox::default();
        assert!(o.has_room());
        o.push_data(data(1, SEND_BACKLOG, false));
        assert!(!o.has_room());
        assert!(!o.take_room_event(), "still full");
        o.add_conn_credit(SEND_BACKLOG as u32);
        take(&mut o);
        assert!(o.take_room_event());
        assert!(!o.take_room_event(), "only once");
    }
}

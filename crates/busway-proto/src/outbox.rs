//! Frames waiting to be written, and the peer's transport-level credit that paces Data.
//!
//! Control frames go first and are never held back: they are small, and a Window or Pong stuck
//! behind Data would stall both sides. Data leaves in FIFO order only while the peer's
//! transport window allows, so the peer never has more payload in flight than it granted.

use std::collections::VecDeque;

use bytes::BytesMut;

use crate::codec::encode;
use crate::frame::{Body, Data, Frame};

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    control: VecDeque<Frame>,
    data: VecDeque<Data>,
    /// Payload bytes the peer lets us have in flight on the whole transport.
    conn_credit: u64,
}

impl Outbox {
    pub fn push_control(&mut self, body: Body) {
        self.control.push_back(Frame::new(body));
    }

    pub fn push_data(&mut self, data: Data) {
        self.data.push_back(data);
    }

    pub fn add_conn_credit(&mut self, credit: u32) {
        self.conn_credit = self.conn_credit.saturating_add(credit.into());
    }

    /// Drops queued Data of a reset stream: the peer would ignore it anyway.
    pub fn purge(&mut self, stream: u64) {
        self.data.retain(|d| d.stream != stream);
    }

    /// Forgets everything, used when the connection failed.
    pub fn clear(&mut self) {
        self.control.clear();
        self.data.clear();
    }

    pub fn wants_transmit(&self) -> bool {
        !self.control.is_empty()
            || self
                .data
                .front()
                .is_some_and(|d| d.payload.is_empty() || self.conn_credit > 0)
    }

    /// Bytes of Data payload waiting for transport credit.
    pub fn queued_data(&self) -> usize {
        self.data.iter().map(|d| d.payload.len()).sum()
    }

    pub fn transmit(&mut self, out: &mut BytesMut) {
        for frame in self.control.drain(..) {
            encode(&frame, out);
        }
        while let Some(front) = self.data.front_mut() {
            let len = front.payload.len() as u64;
            if len <= self.conn_credit {
                self.conn_credit -= len;
                let data = self.data.pop_front().unwrap_or_default();
                encode(&Frame::new(Body::Data(data)), out);
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
                self.conn_credit = 0;
                encode(&Frame::new(Body::Data(part)), out);
                break;
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
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

    fn drain(out: &mut BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = decode(out).unwrap() {
            frames.push(f);
        }
        frames
    }

    #[test]
    fn data_waits_for_credit_and_is_split_at_its_edge() {
        let mut o = Outbox::default();
        o.push_data(data(1, 10, true));
        o.push_control(Body::Ping(Ping { timepoint_us: 1 }));
        assert!(o.wants_transmit());
        let mut out = BytesMut::new();
        o.transmit(&mut out);
        let frames = drain(&mut out);
        assert_eq!(frames.len(), 1, "only the ping: no credit yet");
        assert!(!o.wants_transmit());
        o.add_conn_credit(4);
        o.transmit(&mut out);
        let frames = drain(&mut out);
        let Some(Body::Data(d)) = &frames[0].body else {
            panic!("data expected")
        };
        assert_eq!((d.offset, d.payload.len(), d.fin), (0, 4, false));
        assert_eq!(o.queued_data(), 6);
        o.add_conn_credit(100);
        o.transmit(&mut out);
        let frames = drain(&mut out);
        let Some(Body::Data(d)) = &frames[0].body else {
            panic!("data expected")
        };
        assert_eq!((d.offset, d.payload.len(), d.fin), (4, 6, true));
        assert_eq!(o.conn_credit, 94);
    }

    #[test]
    fn empty_fin_needs_no_credit_and_purge_drops_one_stream() {
        let mut o = Outbox::default();
        o.push_data(data(1, 5, false));
        o.push_data(data(3, 0, true));
        o.purge(1);
        assert!(o.wants_transmit());
        let mut out = BytesMut::new();
        o.transmit(&mut out);
        let frames = drain(&mut out);
        assert_eq!(frames.len(), 1);
        assert!(matches!(&frames[0].body, Some(Body::Data(d)) if d.stream == 3 && d.fin));
    }
}

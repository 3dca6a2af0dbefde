//! The sending half of a multi-link session: the retransmit buffer, what went on which
//! transport, and which transport gets the next piece.
//!
//! Every byte written stays until the peer acknowledges it, and the peer acknowledges only
//! what its application released, so the buffer is at most the peer's window: the application
//! may write only below `acked + window`. Each byte range sent is remembered with the
//! transport it went on; when a transport dies, its unacknowledged ranges (and the fin) go
//! back to be sent on another, lowest offset first. Acknowledgements are cumulative, so one
//! that arrived on any transport, late or early, is as good as any other.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::sendbuf::SendBuf;
use super::LinkId;
use crate::carrier::{Piece, BLOCK};
use crate::MAX_DATA_PAYLOAD;

#[derive(Debug)]
pub(crate) struct SendHalf {
    /// The peer's window: unacknowledged bytes we may hold.
    window: u64,
    /// Written, not acknowledged: `[acked, written)`.
    buf: SendBuf,
    /// The peer released every byte below this.
    acked: u64,
    /// Every byte below this was handed to a transport at least once.
    frontier: u64,
    /// Sent and unacknowledged, by start: (end, transport). Within `[acked, frontier)`.
    sent: BTreeMap<u64, (u64, LinkId)>,
    /// To be sent again (their transport died), by start: end. Within `[acked, frontier)`.
    resend: BTreeMap<u64, u64>,
    /// The transport the block at `frontier` started on, while that block is unfinished.
    block_link: Option<LinkId>,
    /// The application finished: `written` is the final size.
    fin: bool,
    /// The transport the fin last went on, until acknowledged; `None` while it must be sent.
    fin_on: Option<LinkId>,
    /// The fin was handed to a transport at least once (an Ack with fin is then believable).
    fin_sent: bool,
    fin_acked: bool,
    /// An acknowledgement arrived: the peer has the session.
    pub confirmed: bool,
}

/// What [`SendHalf::poll_piece`] chose.
pub(crate) struct Chosen {
    pub link: LinkId,
    pub piece: Piece,
    /// The piece started a new block: the next block should prefer the next transport.
    pub new_block: bool,
}

impl SendHalf {
    pub fn new(window: u32) -> SendHalf {
        SendHalf {
            window: window.into(),
            buf: SendBuf::default(),
            acked: 0,
            frontier: 0,
            sent: BTreeMap::new(),
            resend: BTreeMap::new(),
            block_link: None,
            fin: false,
            fin_on: None,
            fin_sent: false,
            fin_acked: false,
            confirmed: false,
        }
    }

    fn written(&self) -> u64 {
        self.buf.end()
    }

    /// Bytes the application may write now.
    pub fn capacity(&self) -> usize {
        if self.fin {
            return 0;
        }
        let room = (self.acked + self.window).saturating_sub(self.written());
        room.min(usize::MAX as u64) as usize
    }

    /// Takes the front of `data` as far as the window allows; returns how much.
    pub fn write(&mut self, data: &mut Bytes) -> usize {
        let n = self.capacity().min(data.len());
        if n > 0 {
            self.buf.push(data.split_to(n));
        }
        n
    }

    pub fn finish(&mut self) {
        self.fin = true;
    }

    pub fn is_finished(&self) -> bool {
        self.fin
    }

    /// Everything was written, sent and acknowledged, fin included.
    pub fn is_done(&self) -> bool {
        self.fin_acked
    }

    /// Bytes held for retransmission.
    pub fn unacked(&self) -> u64 {
        self.buf.len()
    }

    /// Whether there is something to hand to a transport.
    pub fn wants_send(&self) -> bool {
        !self.resend.is_empty()
            || self.frontier < self.written()
            || (self.fin && self.fin_on.is_none() && !self.fin_acked)
    }

    /// The peer released every byte below `offset` (and has the fin, with `fin`). An `Err`
    /// is a violation of the peer's: it acknowledges what was never sent.
    pub fn on_ack(&mut self, offset: u64, fin: bool) -> Result<(), String> {
        if offset > self.frontier {
            return Err(format!(
                "acknowledgement of {offset} bytes when {} were sent",
                self.frontier
            ));
        }
        if fin && !(self.fin_sent && offset == self.written()) {
            return Err(format!("acknowledgement of a fin at {offset} never sent"));
        }
        self.confirmed = true;
        if offset > self.acked {
            self.acked = offset;
            self.buf.trim(offset);
            trim_below(&mut self.resend, offset, |e| *e);
            trim_below(&mut self.sent, offset, |(e, _)| *e);
        }
        if fin {
            self.fin_acked = true;
            self.fin_on = None;
        }
        Ok(())
    }

    /// Transport `link` died: what it carried and the peer did not acknowledge is sent again.
    /// Returns how many bytes that is.
    pub fn lose_link(&mut self, link: LinkId) -> u64 {
        let lost: Vec<(u64, u64)> = self
            .sent
            .iter()
            .filter(|(_, (_, l))| *l == link)
            .map(|(s, (e, _))| (*s, *e))
            .collect();
        let mut n = 0;
        for (s, e) in lost {
            self.sent.remove(&s);
            n += e - s;
            add_range(&mut self.resend, s, e);
        }
        if self.block_link == Some(link) {
            self.block_link = None;
        }
        if self.fin_on == Some(link) {
            self.fin_on = None;
        }
        n
    }

    /// The next piece to send, and on which transport: retransmissions first, then new bytes,
    /// then a fin of its own. `order` lists the live transports, preferred first; `room` says
    /// how many bytes one may take now (0: none). A block in progress waits for its own
    /// transport, so a transport's share stays a few long runs.
    pub fn poll_piece(
        &mut self,
        order: &[LinkId],
        room: &mut dyn FnMut(LinkId) -> usize,
    ) -> Option<Chosen> {
        if let Some((&s, &e)) = self.resend.iter().next() {
            let (link, max) = first_with_room(order, room)?;
            let n = (e - s).min(block_end(s) - s).min(max as u64) as usize;
            let payload = self.buf.slice(s, n.min(MAX_DATA_PAYLOAD));
            let end = s + payload.len() as u64;
            self.resend.remove(&s);
            if end > s && end < e {
                self.resend.insert(end, e);
            }
            return Some(self.sent_piece(link, s, payload, false));
        }
        let written = self.written();
        if self.frontier < written {
            let s = self.frontier;
            let (link, max, new_block) = match self.block_link.filter(|l| order.contains(l)) {
                Some(l) => match room(l) {
                    0 => return None,
                    max => (l, max, false),
                },
                None => {
                    let (l, max) = first_with_room(order, room)?;
                    (l, max, true)
                }
            };
            let n = (written - s).min(block_end(s) - s).min(max as u64) as usize;
            let payload = self.buf.slice(s, n.min(MAX_DATA_PAYLOAD));
            self.frontier += payload.len() as u64;
            self.block_link = (!self.frontier.is_multiple_of(BLOCK)).then_some(link);
            return Some(self.sent_piece(link, s, payload, new_block));
        }
        if self.fin && self.fin_on.is_none() && !self.fin_acked {
            let (link, _) = first_with_room(order, room)?;
            return Some(self.sent_piece(link, written, Bytes::new(), false));
        }
        None
    }

    /// Records `payload` at `offset` as sent on `link`; the fin rides on a piece that ends
    /// where the application finished.
    fn sent_piece(&mut self, link: LinkId, offset: u64, payload: Bytes, new_block: bool) -> Chosen {
        let end = offset + payload.len() as u64;
        if end > offset {
            self.sent.insert(offset, (end, link));
        }
        let fin = self.fin && end == self.written() && self.fin_on.is_none() && !self.fin_acked;
        if fin {
            self.fin_on = Some(link);
            self.fin_sent = true;
        }
        Chosen {
            link,
            piece: Piece {
                offset,
                payload,
                fin,
            },
            new_block,
        }
    }
}

/// The first transport in `order` with room, and how much.
fn first_with_room(
    order: &[LinkId],
    room: &mut dyn FnMut(LinkId) -> usize,
) -> Option<(LinkId, usize)> {
    order.iter().find_map(|&l| match room(l) {
        0 => None,
        n => Some((l, n)),
    })
}

/// The offset where the block holding `offset` ends.
fn block_end(offset: u64) -> u64 {
    (offset / BLOCK + 1).saturating_mul(BLOCK)
}

/// Adds `[s, e)` to a set of disjoint ranges (start → end), merging neighbours.
fn add_range(set: &mut BTreeMap<u64, u64>, mut s: u64, mut e: u64) {
    if let Some((&ps, &pe)) = set.range(..=s).next_back() {
        if pe >= s {
            s = ps;
            e = e.max(pe);
            set.remove(&ps);
        }
    }
    while let Some((&ns, &ne)) = set.range(s..).next() {
        if ns > e {
            break;
        }
        e = e.max(ne);
        set.remove(&ns);
    }
    set.insert(s, e);
}

/// Drops what lies below `to` from ranges keyed by start whose value holds the end.
fn trim_below<V>(map: &mut BTreeMap<u64, V>, to: u64, end: impl Fn(&V) -> u64) {
    while let Some(entry) = map.first_entry() {
        if *entry.key() >= to {
            break;
        }
        let v = entry.remove();
        if end(&v) > to {
            // Only the part at or above `to` is still unacknowledged.
            map.insert(to, v);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: LinkId) -> usize {
        usize::MAX
    }

    fn drain(s: &mut SendHalf, order: &[LinkId]) -> Vec<(LinkId, u64, usize, bool)> {
        let mut v = Vec::new();
        while let Some(c) = s.poll_piece(order, &mut all) {
            v.push((c.link, c.piece.offset, c.piece.payload.len(), c.piece.fin));
        }
        v
    }

    #[test]
    fn the_window_bounds_what_is_held_and_acks_free_it() {
        let mut s = SendHalf::new(1000);
        let mut data = Bytes::from(vec![1; 1500]);
        assert_eq!(s.write(&mut data), 1000);
        assert_eq!(s.capacity(), 0);
        assert_eq!(drain(&mut s, &[0]), vec![(0, 0, 1000, false)]);
        assert!(s.on_ack(1001, false).is_err(), "more than was sent");
        s.on_ack(400, false).unwrap();
        assert_eq!((s.unacked(), s.capacity()), (600, 400));
        s.on_ack(300, false).unwrap();
        assert_eq!(s.unacked(), 600, "an older ack changes nothing");
        assert!(s.on_ack(1000, true).is_err(), "no fin was sent");
    }

    #[test]
    fn blocks_alternate_and_a_lost_link_is_sent_again_on_another() {
        let mut s = SendHalf::new(1 << 20);
        let mut data = Bytes::from(vec![7; 4 * BLOCK as usize]);
        s.write(&mut data);
        s.finish();
        let mut order = vec![0, 1];
        let mut got = Vec::new();
        while let Some(c) = s.poll_piece(&order, &mut all) {
            if c.new_block {
                order.rotate_left(1);
            }
            got.push((c.link, c.piece.offset, c.piece.fin));
        }
        let b = BLOCK;
        assert_eq!(
            got,
            vec![
                (0, 0, false),
                (1, b, false),
                (0, 2 * b, false),
                (1, 3 * b, true)
            ]
        );
        assert_eq!(s.lose_link(1), 2 * b);
        assert!(s.wants_send());
        assert_eq!(
            drain(&mut s, &[0]),
            vec![(0, b, b as usize, false), (0, 3 * b, b as usize, true)]
        );
        s.on_ack(4 * b, true).unwrap();
        assert!(s.is_done());
        assert_eq!(s.unacked(), 0);
    }

    #[test]
    fn an_ack_inside_a_lost_range_resends_only_the_rest() {
        let mut s = SendHalf::new(1 << 20);
        s.write(&mut Bytes::from(vec![7; 1000]));
        drain(&mut s, &[3]);
        s.on_ack(250, false).unwrap();
        s.lose_link(3);
        assert_eq!(drain(&mut s, &[4]), vec![(4, 250, 750, false)]);
        s.on_ack(900, false).unwrap();
        s.lose_link(4);
        assert_eq!(drain(&mut s, &[5]), vec![(5, 900, 100, false)]);
    }

    #[test]
    fn a_block_waits_for_its_own_link_and_nothing_goes_without_room() {
        let mut s = SendHalf::new(1 << 20);
        s.write(&mut Bytes::from(vec![1; 100]));
        let mut room = |l: LinkId| if l == 0 { 60 } else { 0 };
        let c = s.poll_piece(&[0, 1], &mut room).unwrap();
        assert_eq!((c.link, c.piece.payload.len()), (0, 60));
        let mut only_one = |l: LinkId| usize::from(l == 1) * 1000;
        assert!(s.poll_piece(&[0, 1], &mut only_one).is_none());
        // Its link gone, the block goes on another.
        s.lose_link(0);
        let got = drain(&mut s, &[1]);
        assert_eq!(got, vec![(1, 0, 60, false), (1, 60, 40, false)]);
    }

    #[test]
    fn ranges_merge() {
        let mut m = BTreeMap::new();
        add_range(&mut m, 10, 20);
        add_range(&mut m, 30, 40);
        add_range(&mut m, 20, 30);
        assert_eq!(m.into_iter().collect::<Vec<_>>(), vec![(10, 40)]);
    }
}

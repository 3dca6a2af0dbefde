//! Moving history between members: pages of chunks, and the pull of one member from its owner.
//!
//! The owner multicasts every event it gains, so members rarely need more. A member whose
//! history's digest still differs from its owner's (a lost push, a late joiner, the loser of a
//! heal) pulls: first the events after its newest one, which is all a member that only missed
//! pushes lacks; if the digests still differ, everything, page by page. After a full pull it
//! knows every event the owner holds, so the events it has and the owner lacks are exactly
//! known, and it pushes those to the owner, which multicasts them on. A page is at most
//! [`PAGE_CHUNKS`] datagrams, so no request makes anyone send more than that at once, and a
//! chunk lost in a page is asked for again from where the received part ends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use super::{Event, History};
use crate::wire::{
    HistoryChunk, HistoryRequest, CHUNK_FIXED_LEN, MAX_CHUNK_EVENTS, MAX_DATAGRAM, MAX_HEADER_LEN,
    TAG_LEN,
};

/// Most chunks sent for one request or one push.
pub const PAGE_CHUNKS: usize = 16;
/// Requests in a row that bring nothing before the pull is given up (a later advert restarts
/// it).
pub const PULL_RETRIES: u32 = 8;

/// Bytes of events that fit one chunk's datagram.
const CHUNK_BUDGET: usize = MAX_DATAGRAM - MAX_HEADER_LEN - CHUNK_FIXED_LEN - TAG_LEN;

/// Cuts `events` into at most [`PAGE_CHUNKS`] chunks that each fit a datagram; says whether
/// events were left over. There is always at least one chunk, so an empty answer still carries
/// the sender's length and digest.
pub(crate) fn chunks<'a, I>(events: I, id: u32, h: &History) -> (Vec<HistoryChunk>, bool)
where
    I: IntoIterator<Item = &'a Event>,
{
    let mut out: Vec<HistoryChunk> = Vec::new();
    let mut cur: Vec<Event> = Vec::new();
    let mut used = 0;
    let mut more = false;
    for e in events {
        let len = e.encoded_len();
        if used + len > CHUNK_BUDGET || cur.len() == MAX_CHUNK_EVENTS {
            if out.len() + 1 == PAGE_CHUNKS {
                more = true;
                break;
            }
            out.push(chunk(id, out.len(), std::mem::take(&mut cur), h));
            used = 0;
        }
        used += len;
        cur.push(e.clone());
    }
    out.push(chunk(id, out.len(), cur, h));
    if let Some(last) = out.last_mut() {
        last.last = true;
        last.more = more;
    }
    (out, more)
}

fn chunk(id: u32, part: usize, events: Vec<Event>, h: &History) -> HistoryChunk {
    HistoryChunk {
        id,
        part: part as u16,
        last: false,
        more: false,
        total: h.len() as u32,
        digest: h.digest(),
        events,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only the events after our newest.
    Incremental,
    /// Everything, to find what each side lacks.
    Full,
}

/// What the puller does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The page is not complete yet.
    Wait,
    /// Send [`Pull::request`] again: the next page, a full pull, or a lost chunk's page.
    Again,
    /// Finished; these events of ours the owner lacks (only after a full pull).
    Done(Vec<Event>),
    /// Too many lost pages.
    Abandon,
}

/// One member's pull from its owner.
#[derive(Debug)]
pub(crate) struct Pull {
    pub(crate) peer: String,
    pub(crate) to: SocketAddr,
    pub(crate) mode: Mode,
    pub(crate) id: u32,
    pub(crate) deadline: Instant,
    after: Option<Event>,
    /// Part index → its last event, for the page in flight.
    parts: BTreeMap<u16, Option<Event>>,
    last_part: Option<u16>,
    more: bool,
    /// Full mode: every event the owner sent.
    seen: BTreeSet<Event>,
    retries: u32,
}

impl Pull {
    pub(crate) fn new(peer: &str, to: SocketAddr, mine: &History, now: Instant) -> Pull {
        Pull {
            peer: peer.to_owned(),
            to,
            mode: Mode::Incremental,
            id: 0,
            deadline: now,
            after: mine.last().cloned(),
            parts: BTreeMap::new(),
            last_part: None,
            more: false,
            seen: BTreeSet::new(),
            retries: 0,
        }
    }

    /// The request for the page due now, under a fresh `id`.
    pub(crate) fn request(&mut self, id: u32, deadline: Instant) -> HistoryRequest {
        self.id = id;
        self.deadline = deadline;
        self.parts.clear();
        self.last_part = None;
        self.more = false;
        HistoryRequest {
            id,
            after: self.after.clone(),
        }
    }

    /// A chunk of the page in flight, already merged into `mine` by the caller.
    pub(crate) fn on_chunk(&mut self, c: &HistoryChunk, mine: &History) -> Step {
        if c.id != self.id {
            return Step::Wait;
        }
        if self.mode == Mode::Full {
            self.seen.extend(c.events.iter().cloned());
        }
        self.parts.insert(c.part, c.events.last().cloned());
        if c.last {
            self.last_part = Some(c.part);
            self.more = c.more;
        }
        let Some(last) = self.last_part else {
            return Step::Wait;
        };
        if self.parts.len() != usize::from(last) + 1 {
            return Step::Wait;
        }
        if self.more {
            if let Some(end) = self.parts.values().rev().flatten().next() {
                self.after = Some(end.clone());
            }
            self.retries = 0;
            return Step::Again;
        }
        if mine.digest() == c.digest {
            return Step::Done(Vec::new());
        }
        match self.mode {
            Mode::Incremental => {
                self.mode = Mode::Full;
                self.after = None;
                self.retries = 0;
                Step::Again
            }
            Mode::Full => Step::Done(
                mine.events()
                    .filter(|e| !self.seen.contains(e))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// The page did not arrive whole by its deadline: ask again from the end of the part that
    /// did, so a long transfer under loss still moves forward.
    pub(crate) fn on_timeout(&mut self) -> Step {
        let mut moved = false;
        for (expect, (part, end)) in self.parts.iter().enumerate() {
            if usize::from(*part) != expect {
                break;
            }
            if let Some(e) = end {
                self.after = Some(e.clone());
                moved = true;
            }
        }
        self.retries = if moved { 0 } else { self.retries + 1 };
        if self.retries > PULL_RETRIES {
            return Step::Abandon;
        }
        Step::Again
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{test_event, EventKind};
    use std::time::Duration;

    fn history(n: u64, node: &str) -> History {
        let mut h = History::new();
        h.merge((0..n).map(|i| test_event(1, i * 2, EventKind::Join, node)));
        h
    }

    /// Serves `pull` from `owner` into `mine`, dropping the chunks `drop` says to.
    fn serve(
        owner: &History,
        mine: &mut History,
        drop: &mut dyn FnMut(usize) -> bool,
    ) -> (Step, usize) {
        let base = Instant::now();
        let mut pull = Pull::new("o", "198.18.0.1:7946".parse().unwrap(), mine, base);
        let (mut sent, mut id) = (0, 0);
        loop {
            id += 1;
            let q = pull.request(id, base + Duration::from_secs(1));
            let (cs, _) = chunks(owner.after(q.after.as_ref()), id, owner);
            let mut step = Step::Wait;
            for c in cs {
                sent += 1;
                if drop(sent) {
                    continue;
                }
                mine.merge(c.events.iter().cloned());
                step = pull.on_chunk(&c, mine);
            }
            if step == Step::Wait {
                step = pull.on_timeout();
            }
            match step {
                Step::Again => continue,
                other => return (other, sent),
            }
        }
    }

    #[test]
    fn chunks_fit_datagrams_and_pages_are_capped() {
        let h = history(1000, &"n".repeat(60));
        let (cs, more) = chunks(h.events(), 5, &h);
        assert!(more);
        assert_eq!(cs.len(), PAGE_CHUNKS);
        assert!(cs.last().unwrap().last && cs.last().unwrap().more);
        for c in &cs {
            let bytes: usize = c.events.iter().map(Event::encoded_len).sum();
            assert!(bytes <= CHUNK_BUDGET);
            assert!(!c.events.is_empty());
        }
        let (one, more) = chunks(std::iter::empty(), 1, &h);
        assert!(!more);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].total, 1000);
    }

    #[test]
    fn an_empty_joiner_gets_everything() {
        let owner = history(900, "node-with-a-long-name");
        let mut mine = History::new();
        let (step, _) = serve(&owner, &mut mine, &mut |_| false);
        assert_eq!(step, Step::Done(vec![]));
        assert_eq!(mine.digest(), owner.digest());
    }

    #[test]
    fn a_member_behind_pulls_only_what_it_lacks() {
        let owner = history(50, "a");
        let mut mine = History::new();
        mine.merge(owner.events().take(45).cloned());
        let (step, sent) = serve(&owner, &mut mine, &mut |_| false);
        assert_eq!(step, Step::Done(vec![]));
        assert_eq!(sent, 1, "one chunk with the five events");
        assert_eq!(mine.digest(), owner.digest());
    }

    #[test]
    fn a_member_ahead_finds_exactly_what_the_owner_lacks() {
        let owner = history(30, "a");
        let mut mine = History::new();
        mine.merge(owner.events().cloned());
        let extra = test_event(0, 1, EventKind::Leave, "z");
        mine.merge([extra.clone()]);
        let (step, _) = serve(&owner, &mut mine, &mut |_| false);
        assert_eq!(step, Step::Done(vec![extra]));
    }

    #[test]
    fn lost_chunks_are_asked_for_again() {
        let owner = history(1000, "node-b");
        let mut mine = History::new();
        let (step, _) = serve(&owner, &mut mine, &mut |n| n % 7 == 3);
        assert_eq!(step, Step::Done(vec![]));
        assert_eq!(mine.digest(), owner.digest());
    }

    #[test]
    fn a_dead_owner_is_given_up() {
        let owner = history(10, "a");
        let mut mine = History::new();
        let (step, _) = serve(&owner, &mut mine, &mut |_| true);
        assert_eq!(step, Step::Abandon);
    }
}

//! `STATE_DIR/tickets.state`: the resumption tickets this node holds for its peers, saved at a
//! clean stop and read back (and removed) at start, so the transports a restarted node dials
//! resume with 0-RTT and the sessions waiting for them ride the first flight (CONTRACT
//! section 10).
//!
//! A ticket proves this node to its peer until it expires (at most an hour), so the file is
//! as secret as the bus secret and written like every key file ([`crate::state_file`]). It
//! also records which credential earned the tickets: after a restart with another secret or
//! token they would resume trust the node no longer claims, and are dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use busway_proto::Ticket;

/// The file in `state_dir`.
const FILE: &str = "tickets.state";
const MAGIC: &[u8; 8] = b"bwheld1\n";
/// Tickets read back at most: a few per peer of the largest meshes, far above what is written.
const MAX_TICKETS: usize = 65_536;

/// What proves this node: the fingerprint of its first secret or of its token's secret, zero
/// when it has neither (and then holds no tickets: resumption needs one).
pub fn credential(proto: &busway_proto::Config) -> [u8; 8] {
    match (&proto.token, &proto.secret) {
        (Some(t), _) => busway_proto::secret_fingerprint(&t.secret),
        (None, Some(s)) => busway_proto::secret_fingerprint(s),
        (None, None) => [0; 8],
    }
}

/// Tickets by peer endpoint (as its address prints).
pub type Held = HashMap<String, Vec<Ticket>>;

/// Writes `held` (each ticket with what is left of its life) to `state_dir`.
pub fn save(
    state_dir: &Path,
    cred: [u8; 8],
    held: Vec<(String, Vec<(Ticket, std::time::Duration)>)>,
) -> Result<(PathBuf, usize), String> {
    let mut v = Vec::new();
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&cred);
    let mut n = 0;
    for (peer, tickets) in &held {
        for (t, left) in tickets {
            put(&mut v, peer.as_bytes());
            put(&mut v, &t.to_bytes(*left));
            n += 1;
        }
    }
    let file = state_dir.join(FILE);
    crate::state_file::write(&file, &v)?;
    Ok((file, n))
}

/// The tickets a clean stop saved in `state_dir`, removed from it; none when there is no file,
/// when it is damaged, or when `cred` is not the credential that earned them.
pub fn load(state_dir: &Path, cred: [u8; 8]) -> Result<Held, String> {
    let file = state_dir.join(FILE);
    let Some(bytes) = crate::state_file::take(&file)? else {
        return Ok(Held::new());
    };
    match parse(&bytes, cred) {
        Some(h) => Ok(h),
        None => {
            tracing::warn!(file = %file.display(), "held tickets unreadable or earned with another credential: the first transports after this start do full handshakes");
            Ok(Held::new())
        }
    }
}

fn parse(b: &[u8], cred: [u8; 8]) -> Option<Held> {
    let rest = b.strip_prefix(MAGIC)?;
    let (was, mut rest) = rest.split_first_chunk::<8>()?;
    if *was != cred {
        return None;
    }
    let mut held = Held::new();
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        if n > MAX_TICKETS {
            return None;
        }
        let peer = std::str::from_utf8(get(&mut rest)?).ok()?.to_owned();
        let t = Ticket::from_bytes(get(&mut rest)?)?;
        held.entry(peer).or_default().push(t);
    }
    Some(held)
}

fn put(v: &mut Vec<u8>, b: &[u8]) {
    v.extend_from_slice(&(b.len() as u32).to_be_bytes());
    v.extend_from_slice(b);
}

/// The next length-prefixed field, checked against what is left before it is taken.
fn get<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return None;
    }
    let (field, tail) = tail.split_at(len);
    *rest = tail;
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ticket(n: u8) -> Ticket {
        Ticket {
            ticket: bytes::Bytes::from(vec![n; 60]),
            secret: [n; 32],
            lifetime: Duration::from_secs(3600),
            peer: busway_proto::PeerInfo {
                node: "egress".into(),
                namespace: "default".into(),
                labels: Default::default(),
                capabilities: vec![],
                max_frame: 70_000,
                stream_window: 1 << 18,
                conn_window: 1 << 24,
            },
            trust: busway_proto::Trust::Secret,
        }
    }

    #[test]
    fn tickets_come_back_once_and_only_for_the_same_credential() {
        let dir = tempdir();
        let left = Duration::from_secs(600);
        let held = vec![
            (
                "tcp://127.0.0.1:1".to_string(),
                vec![(ticket(1), left), (ticket(2), left)],
            ),
            ("unix:///run/b.sock".to_string(), vec![(ticket(3), left)]),
        ];
        let (file, n) = save(&dir, [9; 8], held.clone()).unwrap();
        assert_eq!(n, 3);
        let back = load(&dir, [9; 8]).unwrap();
        assert_eq!(back["tcp://127.0.0.1:1"].len(), 2);
        assert_eq!(back["unix:///run/b.sock"][0].secret, [3; 32]);
        assert_eq!(back["unix:///run/b.sock"][0].lifetime, left);
        assert!(!file.exists(), "read once, then removed");
        assert!(load(&dir, [9; 8]).unwrap().is_empty());

        save(&dir, [9; 8], held).unwrap();
        assert!(load(&dir, [8; 8]).unwrap().is_empty(), "another credential");
    }

    #[test]
    fn a_damaged_file_is_no_tickets_not_an_error() {
        let dir = tempdir();
        let (file, _) = save(
            &dir,
            [1; 8],
            vec![("p".into(), vec![(ticket(1), Duration::from_secs(9))])],
        )
        .unwrap();
        let good = std::fs::read(&file).unwrap();
        for cut in [0, 5, 16, 20, good.len() - 1] {
            std::fs::write(&file, &good[..cut]).unwrap();
            assert!(load(&dir, [1; 8]).unwrap().is_empty(), "cut at {cut}");
        }
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "busway-held-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

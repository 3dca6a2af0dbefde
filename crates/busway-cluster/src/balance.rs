//! `lan_balance`: which member serves a client, by rendezvous (highest random weight) hashing.
//!
//! Every member gets a score from a hash of its name and the client's address and port; the
//! highest score serves. The choice depends only on the set of names, so it is stable while
//! membership is, and when a member leaves only the clients it served move (to their second
//! choice), where `hash % n` would move almost all of them.

use std::net::{IpAddr, SocketAddr};

/// The member (by name) that serves `client`, among `members` (the owner included); `None`
/// only for no members. Ties, which need a 64-bit collision, go to the lower name.
pub fn lan_balance<'a, I>(members: I, client: SocketAddr) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let key = client_key(client);
    members
        .into_iter()
        .map(|m| (score(m, &key), m))
        .max_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| nb.cmp(na)))
        .map(|(_, m)| m)
}

/// The client's address (IPv4-mapped addresses as IPv4, so a dual-stack listener and a plain
/// one agree) and port.
fn client_key(client: SocketAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    match client.ip() {
        IpAddr::V4(v4) => {
            k.push(4);
            k.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                k.push(4);
                k.extend_from_slice(&v4.octets());
            }
            None => {
                k.push(6);
                k.extend_from_slice(&v6.octets());
            }
        },
    }
    k.extend_from_slice(&client.port().to_be_bytes());
    k
}

fn score(member: &str, client: &[u8]) -> u64 {
    // FNV-1a over name, a separator no name contains, and the client; then a 64-bit
    // finaliser, since FNV alone spreads the last bytes' changes poorly.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(client.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn clients(n: u16) -> impl Iterator<Item = SocketAddr> {
        (0..n).map(|i| SocketAddr::from(([198, 18, (i / 250) as u8, (i % 250) as u8], 40000 + i)))
    }

    #[test]
    fn the_same_client_gets_the_same_member() {
        let m = ["a", "b", "c"];
        let c: SocketAddr = "198.18.1.9:5555".parse().unwrap();
        let first = lan_balance(m, c);
        assert!(first.is_some());
        assert_eq!(
            lan_balance(["c", "a", "b"], c),
            first,
            "order does not matter"
        );
        assert_eq!(lan_balance(std::iter::empty::<&str>(), c), None);
        let port = "198.18.1.9:5556".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:198.18.1.9]:5555".parse().unwrap();
        assert_eq!(lan_balance(m, mapped), first);
        let _ = lan_balance(m, port);
    }

    #[test]
    fn spread_is_even() {
        let m = ["edge-a", "edge-b", "edge-c", "edge-d"];
        let mut count: HashMap<&str, usize> = HashMap::new();
        for c in clients(8000) {
            *count.entry(lan_balance(m, c).unwrap()).or_default() += 1;
        }
        for name in m {
            let n = count.get(name).copied().unwrap_or(0);
            // 2000 expected; ±10% is over 9 standard deviations.
            assert!((1800..=2200).contains(&n), "{name} got {n}: {count:?}");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_clients() {
        let before = ["a", "b", "c", "d", "e"];
        let after = ["a", "b", "d", "e"];
        let mut moved = 0;
        let mut total = 0;
        for c in clients(5000) {
            let x = lan_balance(before, c).unwrap();
            let y = lan_balance(after, c).unwrap();
            total += 1;
            if x != "c" {
                assert_eq!(x, y, "a client of {x} moved");
            } else {
                moved += 1;
            }
        }
        assert!(
            (800..=1200).contains(&moved),
            "{moved} of {total} were on c"
        );
    }

    #[test]
    fn ports_of_one_address_spread_too() {
        let m = ["a", "b", "c"];
        let mut count: HashMap<&str, usize> = HashMap::new();
        for port in 1000..4000u16 {
            let c = SocketAddr::from(([198, 18, 0, 7], port));
            *count.entry(lan_balance(m, c).unwrap()).or_default() += 1;
        }
        assert!(
            count.values().all(|n| (850..=1150).contains(n)),
            "{count:?}"
        );
    }
}

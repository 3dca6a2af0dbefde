//! Timelines sampled inside a namespace every 2 ms: which MAC the gateway's ARP table gives the
//! service address, and whether a member holds the address. Together they say how long after
//! a takeover the gateway follows the new owner (CONTRACT section 7: within 100 ms).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{enter, Lab, SERVICE_IP};

/// A MAC address.
pub type Mac = [u8; 6];

/// Every change of one value, with when it was first seen, until [`Timeline::finish`].
#[derive(Debug)]
pub struct Timeline<T> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<(Instant, T)>>>,
}

impl<T> Timeline<T> {
    /// Stops sampling: the first value and every change after it.
    pub fn finish(mut self) -> Vec<(Instant, T)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl<T> Drop for Timeline<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Samples `f` on a thread inside namespace `ns` every 2 ms; bounded by the stop flag and,
/// in any case, ten minutes.
fn sample<T: PartialEq + Send + 'static>(
    ns: String,
    f: impl Fn() -> T + Send + 'static,
) -> Timeline<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        enter(&format!("/run/netns/{ns}"));
        let start = Instant::now();
        let mut log: Vec<(Instant, T)> = Vec::new();
        while !s.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
            let v = f();
            if log.last().is_none_or(|(_, last)| *last != v) {
                log.push((Instant::now(), v));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        log
    });
    Timeline {
        stop,
        handle: Some(handle),
    }
}

/// The ARP entry for the service address in the calling thread's namespace (/proc/self/net
/// would be the process's).
fn own_arp() -> Option<Mac> {
    let table = std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
    arp_entry(&table, SERVICE_IP)
}

impl Lab {
    /// The gateway's ARP entry for the service address: its MAC while the entry is complete.
    pub fn watch_arp(&self) -> Timeline<Option<Mac>> {
        sample(self.gateway(), own_arp)
    }

    /// The gateway's ARP entry for the service address now.
    pub fn arp(&self) -> Option<Mac> {
        Lab::within(&self.gateway(), own_arp)
    }

    /// Whether member `i` holds the service address.
    pub fn watch_holder(&self, i: usize) -> Timeline<bool> {
        sample(self.member(i), || {
            nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
                all.any(|a| {
                    a.address
                        .and_then(|s| s.as_sockaddr_in().map(|v4| v4.ip()))
                        .is_some_and(|ip| ip == SERVICE_IP)
                })
            })
        })
    }

    /// Member `i`'s MAC, on its end of the veth.
    pub fn mac(&self, i: usize) -> Mac {
        Lab::within(&self.member(i), || {
            nix::ifaddrs::getifaddrs()
                .expect("getifaddrs")
                .filter(|a| a.interface_name == "eth0")
                .find_map(|a| a.address?.as_link_addr()?.addr())
                .expect("eth0 has a MAC")
        })
    }
}

/// The MAC `/proc/net/arp`'s `table` gives `ip`, if its entry is complete (flag 0x2).
pub fn arp_entry(table: &str, ip: Ipv4Addr) -> Option<Mac> {
    let want = ip.to_string();
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 || f[0] != want {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        let mut mac = [0u8; 6];
        let mut parts = f[3].split(':');
        for b in &mut mac {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(mac)
    })
}

/// How long after the member first held the address (at or after `from`) the gateway's ARP
/// entry first gave its `mac`; zero if the gateway already did by then. `None` if either never
/// happened.
pub fn arp_lag(
    held: &[(Instant, bool)],
    arp: &[(Instant, Option<Mac>)],
    mac: Mac,
    from: Instant,
) -> Option<Duration> {
    let took = held.iter().find(|(t, h)| *h && *t >= from)?.0;
    // The entry at `took` is the last change at or before it; later changes count from theirs.
    let before = arp.iter().rev().find(|(t, _)| *t <= took);
    if before.is_some_and(|(_, m)| *m == Some(mac)) {
        return Some(Duration::ZERO);
    }
    let followed = arp.iter().find(|(t, m)| *t > took && *m == Some(mac))?.0;
    Some(followed - took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_entries_only() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     198.18.0.100     0x1         0x2         02:fc:00:00:0a:05     *        eth0\n\
                     198.18.0.12      0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(
            arp_entry(table, SERVICE_IP),
            Some([0x02, 0xfc, 0, 0, 0x0a, 0x05])
        );
        assert_eq!(arp_entry(table, Ipv4Addr::new(198, 18, 0, 12)), None);
        assert_eq!(arp_entry(table, Ipv4Addr::new(198, 18, 0, 13)), None);
        assert_eq!(arp_entry("", SERVICE_IP), None);
    }

    #[test]
    fn the_lag_runs_from_the_takeover_to_the_new_mac() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (old, new) = ([1; 6], [2; 6]);
        let held = vec![(at(0), false), (at(500), true)];
        let arp = vec![(at(0), Some(old)), (at(530), Some(new))];
        assert_eq!(
            arp_lag(&held, &arp, new, at(100)),
            Some(Duration::from_millis(30))
        );
        // Already following by the takeover (the ARP came first): no lag.
        let early = vec![(at(0), Some(old)), (at(499), Some(new))];
        assert_eq!(arp_lag(&held, &early, new, at(100)), Some(Duration::ZERO));
        // Never followed, or never taken over.
        assert_eq!(arp_lag(&held, &arp[..1], new, at(100)), None);
        assert_eq!(arp_lag(&held[..1], &arp, new, at(100)), None);
    }
}

//! Whether this process may change addresses and send raw frames, asked before anything is
//! bound: without them the node could join the cluster, win the election and then fail to take
//! the address, leaving the cluster with an owner that serves nothing.

/// `CAP_NET_ADMIN`: adding and removing the service address (netlink).
const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: the AF_PACKET socket of gratuitous ARP.
const CAP_NET_RAW: u32 = 13;

/// The capabilities the cluster needs that this process lacks, by name.
pub(crate) fn missing() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    missing_in(&status)
}

/// [`missing`] for the text of `/proc/self/status`. A file without `CapEff` (not Linux, a
/// /proc that hides it) counts as having nothing: netlink would refuse us anyway.
fn missing_in(status: &str) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ]
    .into_iter()
    .filter(|(bit, _)| eff & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        assert!(missing_in("Name:\tx\nCapEff:\t000001ffffffffff\n").is_empty());
        assert_eq!(missing_in("CapEff:\t0000000000002000\n"), ["CAP_NET_ADMIN"]);
        assert_eq!(missing_in("CapEff:\t0000000000001000\n"), ["CAP_NET_RAW"]);
        assert_eq!(missing_in("nothing"), ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    }
}

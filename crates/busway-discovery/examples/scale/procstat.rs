//! A process's CPU time and memory, from /proc: etcd's, and this process's own (the simulated
//! nodes and the watchers share the machine with etcd, so their cost is part of the picture).

/// User + system CPU time in clock ticks (fields 14 and 15 of `/proc/PID/stat`, counted after
/// the command name, which may itself hold spaces and parentheses).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (the state): utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status`: `VmRSS` (resident now) or `VmHWM` (the peak).
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The 1-minute load average, to say how busy the shared machine was.
pub fn load1() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// CPU use over a span, as a percentage of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpan {
    ticks: Option<u64>,
    at: std::time::Instant,
}

impl CpuSpan {
    pub fn begin(pid: &str) -> CpuSpan {
        CpuSpan {
            ticks: cpu_ticks(pid),
            at: std::time::Instant::now(),
        }
    }

    /// Percent of one core since [`CpuSpan::begin`], with `clk_tck` ticks a second.
    pub fn percent(&self, pid: &str, clk_tck: u64) -> Option<f64> {
        let used = cpu_ticks(pid)?.checked_sub(self.ticks?)?;
        let secs = self.at.elapsed().as_secs_f64();
        (secs > 0.0).then(|| used as f64 / clk_tck.max(1) as f64 / secs * 100.0)
    }
}

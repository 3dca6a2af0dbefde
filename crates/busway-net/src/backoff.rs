//! One jittered exponential backoff, for every retry in busway: ejected targets and their connect
//! probes, DNS lookup retries, and transport redials.
//!
//! The base delay starts at `first` and doubles up to `max`. Each delay handed out is the base
//! stretched by a random factor in `[1, 1 + JITTER]`, never shrunk: the contract promises an
//! ejected target "no client session for at least 1 s", and a delay jittered downwards could
//! break that promise. Jitter is there because failures are shared: when a backend restarts or a
//! DNS server hiccups, every endpoint, probe and pool that saw it fail at the same instant would
//! otherwise retry at the same instants too, a thundering herd that hits the recovering server
//! with all of them at once, at every doubling. The spread is a quarter of the delay: wide enough
//! to take retries of one failure apart (a 30 s wait spreads over 7.5 s), narrow enough that a
//! delay stays close to what the docs say.
//!
//! So the longest wait is `max × 1.25` (37.5 s for the contract's 30 s): capping the jittered
//! value at `max` would line every long-failed target up on exactly `max` again, where the herd
//! matters most.

use std::time::Duration;

/// How far a delay may be stretched: a random share of up to this fraction is added.
pub const JITTER: f64 = 0.25;

/// A doubling backoff with upward jitter. Not shared: each retrying thing owns one.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    base: Duration,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`. A `max` below `first` is raised to `first`, so
    /// the first delay is never shorter than asked. A zero `first` never grows: it is "retry at
    /// once", which callers should not want.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            base: first,
        }
    }

    /// The delay to wait now (jittered), then doubles the base up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Back to `first`, after a success.
    pub fn reset(&mut self) {
        self.base = self.first;
    }

    /// [`Self::next_delay`] with the random draw `r` in `[0, 1)` given, so tests can reach the
    /// bounds exactly.
    fn next_with(&mut self, r: f64) -> Duration {
        let d = self.base;
        self.base = d.checked_mul(2).unwrap_or(self.max).min(self.max);
        // Clamped, so no draw can shrink the delay or stretch it past the band (nor make
        // `mul_f64` panic: a quarter of any duration fits in one).
        let r = if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) };
        d.saturating_add(d.mul_f64(JITTER * r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn upper(d: Duration) -> Duration {
        d + d / 4
    }

    #[test]
    fn delays_double_within_their_jitter_band_up_to_the_cap() {
        for _ in 0..200 {
            let mut b = Backoff::new(S, 30 * S);
            for base in [1, 2, 4, 8, 16, 30, 30, 30] {
                let d = b.next_delay();
                let base = base * S;
                assert!(
                    d >= base && d <= upper(base),
                    "{d:?} for a base of {base:?}"
                );
            }
        }
    }

    #[test]
    fn the_band_is_exactly_zero_to_a_quarter_up() {
        let mut b = Backoff::new(S, 30 * S);
        assert_eq!(b.next_with(0.0), S);
        assert_eq!(b.next_with(1.0), 2 * S + S / 2);
        // A draw out of range cannot shrink or over-stretch a delay.
        assert_eq!(b.next_with(-3.0), 4 * S);
        assert_eq!(b.next_with(7.0), upper(8 * S));
        assert_eq!(b.next_with(f64::NAN), 16 * S);
    }

    #[test]
    fn jitter_spreads_retries_of_one_failure() {
        let delays: Vec<Duration> = (0..50)
            .map(|_| Backoff::new(S, 30 * S).next_delay())
            .collect();
        let (lo, hi) = (delays.iter().min(), delays.iter().max());
        assert!(
            hi.zip(lo).is_some_and(|(h, l)| *h - *l > S / 20),
            "50 first delays all within 50 ms: {delays:?}"
        );
    }

    #[test]
    fn reset_starts_over_from_first() {
        let mut b = Backoff::new(Duration::from_millis(100), 5 * S);
        for _ in 0..10 {
            b.next_delay();
        }
        assert!(b.next_delay() >= 5 * S);
        b.reset();
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(125));
    }

    #[test]
    fn odd_arguments_do_not_panic_or_break_the_promise() {
        // max below first: first wins.
        let mut b = Backoff::new(10 * S, S);
        assert!(b.next_delay() >= 10 * S);
        assert!(b.next_delay() <= upper(10 * S));
        // Huge values saturate instead of overflowing.
        let mut b = Backoff::new(Duration::MAX / 2, Duration::MAX);
        for _ in 0..4 {
            assert!(b.next_delay() >= Duration::MAX / 2);
        }
        let mut b = Backoff::new(Duration::ZERO, S);
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}

//! The token bucket of `new_sessions_per_client`: a rate of N tokens per second and a burst of N,
//! so a client may open N sessions at once and then N per second.
//!
//! Tokens are kept in billionths in an integer, so the refill is exact (no drift from adding
//! float fractions millions of times) and a bucket is 24 bytes. The rate is passed to every
//! call instead of being stored: a reload that changes it applies to the next session of a
//! client already tracked, and a bucket left over a smaller burst is clipped to it.

use std::time::Duration;

use tokio::time::Instant;

/// One token, in the billionths the bucket counts.
const TOKEN: u64 = 1_000_000_000;

/// The time in which an empty bucket fills up, whatever its rate, because the burst is the rate.
pub const REFILL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    /// Billionths of a token held at `at`.
    held: u64,
    /// When `held` was last brought up to date (the last take).
    at: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` tokens per second.
    pub fn full(rate: u32, now: Instant) -> Self {
        TokenBucket {
            held: burst(rate),
            at: now,
        }
    }

    /// Billionths of a token held at `now`. The elapsed time is capped at [`REFILL`], after
    /// which the bucket is full anyway, so the product stays within a `u64` (below 4.3e18).
    fn level(&self, rate: u32, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.at).min(REFILL);
        let refill = elapsed.as_nanos() as u64 * u64::from(rate);
        self.held.saturating_add(refill).min(burst(rate))
    }

    /// Whether a token could be taken at `now`.
    pub fn ready(&self, rate: u32, now: Instant) -> bool {
        self.level(rate, now) >= TOKEN
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, rate: u32, now: Instant) -> bool {
        let level = self.level(rate, now);
        if level < TOKEN {
            return false;
        }
        self.held = level - TOKEN;
        self.at = now;
        true
    }

    /// Whether the bucket is full at `now` for any rate: nothing was taken within [`REFILL`],
    /// so forgetting it and starting a fresh full one later changes nothing.
    pub fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) >= REFILL
    }
}

fn burst(rate: u32) -> u64 {
    u64::from(rate) * TOKEN
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn advance_ms(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_the_rate_then_the_rate() {
        let mut b = TokenBucket::full(5, Instant::now());
        for _ in 0..5 {
            assert!(b.take(5, Instant::now()));
        }
        assert!(!b.ready(5, Instant::now()));
        assert!(!b.take(5, Instant::now()));
        // One token every 200 ms.
        advance_ms(199).await;
        assert!(!b.take(5, Instant::now()));
        advance_ms(1).await;
        assert!(b.take(5, Instant::now()));
        assert!(!b.take(5, Instant::now()));
        // A second refills it completely, and no further.
        advance_ms(5_000).await;
        for _ in 0..5 {
            assert!(b.take(5, Instant::now()));
        }
        assert!(!b.take(5, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn fractions_add_up_exactly() {
        // 3/s: a token every 333.33… ms; a thousand 1 ms steps give exactly 3.
        let mut b = TokenBucket::full(3, Instant::now());
        while b.take(3, Instant::now()) {}
        let mut got = 0;
        for _ in 0..1000 {
            advance_ms(1).await;
            if b.take(3, Instant::now()) {
                got += 1;
            }
        }
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_rate_applies_to_the_next_take() {
        let mut b = TokenBucket::full(100, Instant::now());
        // Lowered to 2/s: what is held is clipped to the new burst.
        assert!(b.take(2, Instant::now()));
        assert!(b.take(2, Instant::now()));
        assert!(!b.take(2, Instant::now()));
        // Raised to 10/s: refilled at the new rate.
        advance_ms(100).await;
        assert!(b.take(10, Instant::now()));
        assert!(!b.take(10, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_once_a_second_passed_since_the_last_take() {
        let mut b = TokenBucket::full(1, Instant::now());
        assert!(b.take(1, Instant::now()));
        advance_ms(999).await;
        assert!(!b.idle(Instant::now()));
        assert!(!b.ready(1, Instant::now()));
        advance_ms(1).await;
        assert!(b.idle(Instant::now()));
        assert!(b.ready(1, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_largest_rate_does_not_overflow() {
        let mut b = TokenBucket::full(u32::MAX, Instant::now());
        assert!(b.take(u32::MAX, Instant::now()));
        advance_ms(10_000).await;
        assert!(b.take(u32::MAX, Instant::now()));
        assert_eq!(b.level(u32::MAX, Instant::now()), burst(u32::MAX) - TOKEN);
    }
}

//! The restart backoff of `elect --restart` (docs/usage.md): 1s doubling to a
//! 60s cap, ±10 % jitter, back to 1s after a child ran 60s. Pure: the random
//! source is a seeded generator, so tests can pin it.

use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(60);
/// A child that ran this long is healthy: the next failure starts over.
pub const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            attempt: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The delay before the next start, given how long the last run lasted.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE {
            self.attempt = 0;
        }
        let base = FIRST
            .checked_mul(1u32 << self.attempt.min(6))
            .unwrap_or(CAP)
            .min(CAP);
        self.attempt = self.attempt.saturating_add(1);
        // Uniform in [0.9, 1.1] of the base.
        let r = self.next_u64() % 2001;
        base.mul_f64(0.9 + r as f64 / 10_000.0)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, base_secs: f64) -> bool {
        let s = d.as_secs_f64();
        s >= base_secs * 0.9 - 1e-9 && s <= base_secs * 1.1 + 1e-9
    }

    #[test]
    fn doubles_to_the_cap_with_jitter() {
        for seed in 0..50 {
            let mut b = Backoff::new(seed);
            for base in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0] {
                let d = b.next_delay(Duration::from_secs(1));
                assert!(within(d, base), "seed {seed}: {d:?} for {base}");
            }
        }
    }

    #[test]
    fn resets_after_a_stable_run() {
        let mut b = Backoff::new(7);
        for _ in 0..5 {
            b.next_delay(Duration::ZERO);
        }
        assert!(within(b.next_delay(Duration::from_secs(59)), 32.0));
        assert!(within(b.next_delay(STABLE), 1.0));
        assert!(within(b.next_delay(Duration::ZERO), 2.0));
    }

    #[test]
    fn jitter_varies() {
        let mut b = Backoff::new(3);
        let ds: Vec<_> = (0..20).map(|_| b.next_delay(STABLE)).collect();
        assert!(ds.windows(2).any(|w| w[0] != w[1]));
    }
}

//! Exponential backoff with jitter, shared by the REST retries and the WebSocket reconnects.

use rand::Rng;
use std::time::Duration;

/// How long to wait before the next attempt: `initial × multiplier^attempt`, capped at `max`,
/// then jittered into `[delay / 2, delay]` so that many clients cut off together do not come
/// back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Longest delay (before jitter).
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: u32,
    /// Whether to jitter delays (on by default; off only for deterministic tests).
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The capped delay before retry number `attempt` (0 = the first retry), without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1)
            .checked_pow(attempt)
            .unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry number `attempt`, jittered if configured.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if !self.jitter || ceiling.is_zero() {
            return ceiling;
        }
        let half = ceiling.checked_div(2).unwrap_or_default();
        let spread = ceiling.saturating_sub(half);
        half.saturating_add(spread.mul_f64(rand::thread_rng().gen_range(0.0..=1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_jitter_stays_within_half_to_full() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2,
            jitter: true,
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(4), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(1));
        for attempt in 0..40 {
            let ceiling = backoff.ceiling(attempt);
            let delay = backoff.delay(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
        }
        let fixed = Backoff {
            jitter: false,
            ..backoff
        };
        assert_eq!(fixed.delay(2), Duration::from_millis(400));
    }
}

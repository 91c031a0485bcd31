//! Order nonces. A nonce names one order for ever (the on-chain order record is keyed by it)
//! and `cancel_up_to` kills every order below a floor, so nonces must strictly increase.
//! Microseconds since the epoch give that across restarts without any stored state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out strictly increasing nonces, seeded from the clock.
#[derive(Debug, Default)]
pub struct Nonces {
    last: AtomicU64,
}

impl Nonces {
    /// A generator whose nonces start above `floor` (e.g. the on-chain cancel floor).
    pub fn above(floor: u64) -> Nonces {
        Nonces {
            last: AtomicU64::new(floor),
        }
    }

    /// The next nonce: the current time in microseconds, or one more than the last nonce if
    /// the clock has not moved on.
    pub fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_strictly_increase_even_in_a_burst() {
        let nonces = Nonces::above(0);
        let mut last = 0;
        for _ in 0..10_000 {
            let n = nonces.next();
            assert!(n > last);
            last = n;
        }
        let far = Nonces::above(u64::MAX - 2);
        assert_eq!(far.next(), u64::MAX - 1);
    }
}

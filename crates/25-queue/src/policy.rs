//! Retry policy: exponential backoff with a cap, and the attempt limit before a dead letter.

use std::time::Duration;

/// How failed deliveries are retried. Given to the queue at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Attempts (failed or not) after which a job that still fails becomes dead. At least 1.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, doubling, capped at 1 h, 20 attempts (about 15 hours before a dead letter).
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            max_attempts: 20,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt once `attempts` attempts have failed (`attempts >= 1`):
    /// `min(base * 2^(attempts-1), max)`, saturating instead of overflowing.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1);
        let delay = 1u32
            .checked_shl(exp)
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(self.max);
        delay.min(self.max)
    }

    /// True when a job that has made `attempts` attempts may not be retried again.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let p = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            max_attempts: 5,
        };
        let secs: Vec<u64> = (1..=6).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 100, 100]);
        assert_eq!(p.backoff(0).as_secs(), 10);
        assert_eq!(p.backoff(40).as_secs(), 100);
        assert_eq!(p.backoff(u32::MAX).as_secs(), 100);
        assert!(!p.exhausted(4));
        assert!(p.exhausted(5));
    }
}

//! Flow control between the store step and the processing step.
//!
//! Receiving is cheaper than classifying, so a burst from several modalities can pile up
//! instances waiting for processing faster than they are processed; every instance then waits
//! behind the pile, and with no bound the wait has no bound either. Past `[node]
//! max_unprocessed` instances waiting, the store step still stores (and fsyncs) each instance at
//! once but holds its C-STORE response until the pile is below the limit again, for at most
//! [`MAX_PACING`]: senders are paced to the processing rate, and the time an instance spends in
//! radroute stays bounded. The forward queue is never limited this way: a destination that is
//! down must not stop the modalities (the spool absorbs it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The longest a C-STORE response is held back: well inside a modality's DIMSE timeout.
pub const MAX_PACING: Duration = Duration::from_secs(20);

/// Instances stored and not yet processed, and a signal when one is.
#[derive(Default)]
pub struct Backlog {
    waiting: AtomicUsize,
    processed: Notify,
}

impl Backlog {
    /// One more instance waits for processing.
    pub fn stored(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// One instance was processed (instances recovered at start-up were never counted in, so
    /// this saturates at zero).
    pub fn processed(&self) {
        let _ = self
            .waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.processed.notify_waiters();
    }

    /// Instances waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Returns once fewer than `limit` instances wait (at once when `limit` is 0: no limit),
    /// or after `max`. Returns how long it waited (zero when it did not).
    pub async fn wait_below(&self, limit: usize, max: Duration) -> Duration {
        if limit == 0 || self.waiting() < limit {
            return Duration::ZERO;
        }
        let started = tokio::time::Instant::now();
        let deadline = started + max;
        loop {
            let notified = self.processed.notified();
            if self.waiting() < limit {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn holds_until_below_the_limit_or_the_maximum() {
        let b = Arc::new(Backlog::default());
        assert_eq!(
            b.wait_below(1, Duration::from_secs(5)).await,
            Duration::ZERO
        );
        b.stored();
        b.stored();
        // At the limit: waits for a processed instance.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.wait_below(2, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        b.processed();
        let waited = waiter.await.expect("waiter");
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        // Past the maximum it gives up waiting.
        b.stored();
        let waited = b.wait_below(1, Duration::from_millis(50)).await;
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        // No limit: never waits; processed() never goes below zero.
        assert_eq!(
            b.wait_below(0, Duration::from_secs(5)).await,
            Duration::ZERO
        );
        for _ in 0..5 {
            b.processed();
        }
        assert_eq!(b.waiting(), 0);
    }
}

//! The receive memory budget: one pool of bytes shared by every association for the data sets
//! they are receiving.
//!
//! Data sets are held in memory until the store handler returns (the store step parses them and
//! hands the buffer on without a copy), so what peers send must be bounded by configuration, not
//! by peers: an association reserves the capacity its data set buffer is about to have before
//! the buffer grows, and gives it back when the handler has returned or the association ends.
//! When the pool is empty the association stops reading (the sender is held back by TCP flow
//! control) until memory is freed or its wait times out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Granularity of reservations.
const UNIT: usize = 1024;

/// Why memory could not be reserved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// More than the whole budget was asked for.
    #[error("{wanted} bytes asked for, more than the whole receive budget of {total} bytes")]
    Exceeds {
        /// Bytes asked for.
        wanted: usize,
        /// The budget.
        total: usize,
    },
    /// Other associations held the budget for longer than the wait.
    #[error("receive memory budget exhausted for {0:?}")]
    TimedOut(Duration),
}

/// The pool (see the module documentation).
#[derive(Debug)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: usize,
}

impl MemoryBudget {
    /// A pool of `bytes` (rounded down to whole KiB, at least one).
    pub fn new(bytes: usize) -> Arc<MemoryBudget> {
        let total_units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(MemoryBudget {
            units: Arc::new(Semaphore::new(total_units)),
            total_units,
        })
    }

    /// Bytes not reserved by anyone right now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// An empty reservation drawing on this pool.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }
}

/// Bytes one association holds from the pool; returned when dropped or released.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.units * UNIT
    }

    /// Grows the reservation to cover `bytes`, waiting at most `wait` for others to free
    /// memory. Nothing is taken when it already covers them.
    pub async fn cover(&mut self, bytes: usize, wait: Duration) -> Result<(), BudgetError> {
        let wanted = bytes.div_ceil(UNIT);
        if wanted <= self.units {
            return Ok(());
        }
        let total = self.budget.total_units;
        let exceeds = || BudgetError::Exceeds {
            wanted: bytes,
            total: total * UNIT,
        };
        if wanted > total {
            return Err(exceeds());
        }
        let more = u32::try_from(wanted - self.units).map_err(|_| exceeds())?;
        let units = self.budget.units.clone();
        let permit = match units.clone().try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!("radroute_receive_memory_waits_total").increment(1);
                tokio::time::timeout(wait, units.acquire_many_owned(more))
                    .await
                    .map_err(|_| BudgetError::TimedOut(wait))?
                    // The semaphore is never closed.
                    .map_err(|_| BudgetError::TimedOut(wait))?
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        self.publish();
        Ok(())
    }

    /// Grows the reservation to cover `bytes` if the pool has them right now; never waits.
    /// For memory that is worth having but not worth waiting for (a data set's write-behind
    /// buffers: without them the data set is written after it arrived, as before).
    pub fn try_cover(&mut self, bytes: usize) -> bool {
        let wanted = bytes.div_ceil(UNIT);
        if wanted <= self.units {
            return true;
        }
        let Ok(more) = u32::try_from(wanted - self.units) else {
            return false;
        };
        let Ok(permit) = self.budget.units.clone().try_acquire_many_owned(more) else {
            return false;
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        self.publish();
        true
    }

    /// Gives everything back.
    pub fn release(&mut self) {
        if self.permit.take().is_some() {
            self.units = 0;
            self.publish();
        }
    }

    fn publish(&self) {
        let used = self.budget.total_units - self.budget.units.available_permits();
        metrics::gauge!("radroute_receive_memory_bytes").set((used * UNIT) as f64);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_share_the_pool_and_wait_bounded() {
        let budget = MemoryBudget::new(10 * UNIT);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        a.cover(6 * UNIT, Duration::ZERO).await.expect("fits");
        a.cover(3 * UNIT, Duration::ZERO)
            .await
            .expect("already covered");
        assert_eq!(a.bytes(), 6 * UNIT);
        assert_eq!(budget.available(), 4 * UNIT);
        // 5 KiB does not fit next to a's 6: b waits, then gives up.
        let err = b
            .cover(5 * UNIT, Duration::from_millis(20))
            .await
            .expect_err("budget exhausted");
        assert!(matches!(err, BudgetError::TimedOut(_)));
        assert!(matches!(
            b.cover(11 * UNIT, Duration::ZERO).await,
            Err(BudgetError::Exceeds { .. })
        ));
        // Released memory lets a waiter through.
        let waiter =
            tokio::spawn(async move { b.cover(5 * UNIT, Duration::from_secs(5)).await.map(|_| b) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        a.release();
        let b = waiter.await.expect("join").expect("covered after release");
        let mut c = budget.reservation();
        assert!(
            !c.try_cover(6 * UNIT),
            "5 KiB left: 6 do not fit, without waiting"
        );
        assert_eq!(c.bytes(), 0);
        assert!(c.try_cover(5 * UNIT));
        assert!(c.try_cover(2 * UNIT), "already covered");
        assert_eq!(budget.available(), 0);
        drop(c);
        assert_eq!(b.bytes(), 5 * UNIT);
        drop(b);
        assert_eq!(budget.available(), 10 * UNIT);
    }
}

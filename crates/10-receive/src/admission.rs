//! Association slots: the global limit (`max_associations`) and the per-calling-AE limit
//! (`max_associations_per_ae`), taken together once the A-ASSOCIATE-RQ has been read.
//!
//! Connections that are still negotiating hold no slot (they come from a separate pool in the
//! accept loop, bounded in number and in time by ARTIM), so silent or slow connections cannot
//! keep a modality out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one SCP.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
    per_ae: Arc<PerAeCounter>,
}

/// Why an association was refused a slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `max_associations` are open.
    #[error("association limit of {0} reached")]
    Limit(usize),
    /// The calling AE has `max_associations_per_ae` open.
    #[error("per-AE association limit of {limit} reached for {ae}")]
    AeLimit {
        /// Calling AE title.
        ae: String,
        /// The limit.
        limit: usize,
    },
}

impl Refusal {
    /// The `outcome` label of `radroute_associations_total` for this refusal.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::Limit(_) => "rejected_limit",
            Refusal::AeLimit { .. } => "rejected_ae_limit",
        }
    }
}

/// An admitted association's slots; released when dropped.
#[derive(Debug)]
pub struct Ticket {
    _slot: OwnedSemaphorePermit,
    _ae: Option<PerAeSlot>,
}

impl Admission {
    /// `max_associations` slots (at least one).
    pub fn new(max_associations: usize) -> Admission {
        let limit = max_associations.max(1);
        Admission {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            per_ae: Arc::default(),
        }
    }

    /// Takes a slot for an association of `calling_ae`, which may have at most `per_ae_limit`
    /// open (0: no per-AE limit). Never waits.
    pub fn try_admit(&self, calling_ae: &str, per_ae_limit: usize) -> Result<Ticket, Refusal> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Limit(self.limit))?;
        let ae = if per_ae_limit > 0 {
            let ae = calling_ae.trim();
            Some(
                self.per_ae
                    .acquire(ae, per_ae_limit)
                    .ok_or_else(|| Refusal::AeLimit {
                        ae: ae.to_string(),
                        limit: per_ae_limit,
                    })?,
            )
        } else {
            None
        };
        Ok(Ticket {
            _slot: slot,
            _ae: ae,
        })
    }
}

/// Open associations per calling AE title.
#[derive(Debug, Default)]
struct PerAeCounter {
    open: Mutex<HashMap<String, usize>>,
}

/// One open association of a calling AE; released on drop.
#[derive(Debug)]
struct PerAeSlot {
    counter: Arc<PerAeCounter>,
    ae: String,
}

impl PerAeCounter {
    fn acquire(self: &Arc<Self>, ae: &str, limit: usize) -> Option<PerAeSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ae.to_string()).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                open.remove(ae);
            }
            return None;
        }
        *n += 1;
        Some(PerAeSlot {
            counter: self.clone(),
            ae: ae.to_string(),
        })
    }
}

impl Drop for PerAeSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ae) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ae);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_and_per_ae_slots() {
        let admission = Admission::new(3);
        let a1 = admission.try_admit("A", 1).expect("first A");
        assert_eq!(
            admission.try_admit("A ", 1).expect_err("second A"),
            Refusal::AeLimit {
                ae: "A".into(),
                limit: 1
            }
        );
        let _b = admission.try_admit("B", 1).expect("B");
        let _c = admission.try_admit("C", 0).expect("C, no per-AE limit");
        assert_eq!(
            admission.try_admit("D", 1).expect_err("full"),
            Refusal::Limit(3)
        );
        drop(a1);
        let _a2 = admission.try_admit("A", 1).expect("A again after release");
    }
}

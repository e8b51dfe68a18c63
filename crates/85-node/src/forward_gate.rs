//! The forward workers of one destination share a [`Gate`]: it hands out the right to open an
//! association ([`Permit`]) within the limit the destination has shown it serves
//! ([`crate::forward_limit::Limit`]), notices an opening that stalls beside open siblings (a
//! one-association destination), and tells lingering siblings to let their association go. It
//! publishes the learned limit as a metric and logs each change.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::forward_limit::Limit;
use crate::telemetry::{
    FORWARD_ASSOCIATIONS_LIMIT, FORWARD_ASSOCIATIONS_OPEN, FORWARD_ASSOCIATION_STALLS,
};

/// The shared association limit of one destination.
pub struct Gate {
    destination: String,
    limit: Mutex<Limit>,
    /// Bumped whenever a worker waiting for a permit may now get one.
    changed: watch::Sender<u64>,
}

impl Gate {
    /// The gate of `destination`, configured for `max` associations.
    pub fn new(destination: &str, max: usize) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            destination: destination.to_string(),
            limit: Mutex::new(Limit::new(max)),
            changed: watch::channel(0).0,
        });
        gate.with(|_| (), "");
        gate
    }

    /// A reload set the destination's `associations` to `max`.
    pub fn set_max(&self, max: usize) {
        self.with(|l| l.set_max(max), "configuration changed");
        self.notify();
    }

    /// Changes that may let a waiting worker open an association.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The right to open an association now, if the destination takes one more.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let now = Instant::now();
        self.with(|l| l.try_open(now), "back-off over, probing one more")
            .then(|| Permit {
                gate: self.clone(),
                used: false,
                idle: false,
            })
    }

    /// True when an open association should be let go after its batch (see
    /// [`Limit::should_release`]).
    pub fn should_release(&self) -> bool {
        self.with(|l| l.should_release(), "")
    }

    /// Runs `f` on the limit; logs and publishes a change of the learned limit (`why`).
    fn with<R>(&self, f: impl FnOnce(&mut Limit) -> R, why: &str) -> R {
        let mut l = self.limit.lock().unwrap_or_else(|e| e.into_inner());
        let before = l.limit();
        let out = f(&mut l);
        let (limit, max, open) = (l.limit(), l.max(), l.open());
        drop(l);
        let name = self.destination.clone();
        metrics::gauge!(FORWARD_ASSOCIATIONS_LIMIT, "destination" => name.clone())
            .set(limit as f64);
        metrics::gauge!(FORWARD_ASSOCIATIONS_OPEN, "destination" => name).set(open as f64);
        if limit != before {
            info!(destination = %self.destination, limit, max, before, reason = why, "forward associations limit changed");
            if limit > before {
                self.notify();
            }
        }
        out
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// A slot for one association of a destination, held while it opens and stays open; dropping
/// it frees the slot.
pub struct Permit {
    gate: Arc<Gate>,
    /// An association was (tried to be) opened with it: its end may let a waiting worker in.
    used: bool,
    /// Lingering without work.
    idle: bool,
}

impl Permit {
    /// Runs `opening` (negotiating an association), watching for a stall: when the answer takes
    /// longer than the destination's patience while sibling associations are open, the
    /// destination is taken to serve only those, and they are asked to let go; the opening goes
    /// on (bounded by its own timeouts) and is never counted as failed for waiting.
    pub async fn open<T, E>(
        &mut self,
        opening: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.used = true;
        let gate = self.gate.clone();
        let siblings = gate.with(|l| l.open().saturating_sub(1), "");
        let patience = gate.with(|l| l.patience(), "");
        let started = Instant::now();
        tokio::pin!(opening);
        let mut stall = None;
        let result = tokio::select! {
            result = &mut opening => result,
            _ = tokio::time::sleep(patience), if siblings > 0 => {
                stall = Stall::begin(&gate, started.elapsed());
                opening.await
            }
        };
        drop(stall);
        if result.is_ok() {
            let took = started.elapsed();
            gate.with(|l| l.opened(siblings, took), "");
        }
        result
    }

    /// Marks the association as lingering without work (`true`) or working again (`false`).
    pub fn set_idle(&mut self, idle: bool) {
        if self.idle != idle {
            self.idle = idle;
            self.gate.with(|l| l.set_idle(idle), "");
        }
    }

    /// The worker took a full batch: more may be waiting, so a sibling may open beside it.
    pub fn full_batch(&self) {
        self.gate.notify();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let idle = self.idle;
        self.gate.with(
            |l| {
                if idle {
                    l.set_idle(false);
                }
                l.closed();
            },
            "",
        );
        if self.used {
            self.gate.notify();
        }
    }
}

/// An opening counted as stalled until it ends.
struct Stall {
    gate: Arc<Gate>,
}

impl Stall {
    /// Counts the stall (after `waited`) unless no sibling is open any more (then the
    /// destination is merely slow).
    fn begin(gate: &Arc<Gate>, waited: Duration) -> Option<Stall> {
        let now = Instant::now();
        let counted = gate.with(
            |l| {
                let siblings = l.open().saturating_sub(1);
                (siblings > 0).then(|| l.stalled(siblings, now))
            },
            "an association waited for the destination beside its siblings",
        );
        counted?;
        metrics::counter!(FORWARD_ASSOCIATION_STALLS, "destination" => gate.destination.clone())
            .increment(1);
        info!(destination = %gate.destination, waited_ms = waited.as_millis() as u64, "association not answered while others are open: asking them to let go");
        // Lingering siblings look again.
        gate.notify();
        Some(Stall { gate: gate.clone() })
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.gate.with(|l| l.unstalled(), "");
        self.gate.notify();
    }
}

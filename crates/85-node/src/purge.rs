//! Purging: nothing leaks. Spool files are removed once nothing more will be sent from them,
//! after a retention: when every destination has the instance, when the jobs still missing
//! were dropped by an operator, or when no route sent it anywhere (`[spool] retention_secs`);
//! when a job became a dead letter, `[spool] dead_letter_retention_secs` after it died, so an
//! operator can still retry it until then.
//!
//! The queue decides what is purgeable ([`ForwardQueue::purgeable`]); this loop marks each
//! instance `done` first and then removes its files, so an operator retry that races the
//! purge is refused by the queue instead of queueing a job with nothing to send. A crash
//! between the two leaves the files of a `done` instance: start-up recovery removes them
//! (`node/recover.rs`).

use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{ForwardQueue, Retention, UnixMillis};
use radroute_spool::{InstanceId, InstanceStore};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

/// Instances purged per queue query.
const BATCH: usize = 256;

/// How often the purger looks without being woken (dead letters and routed-nowhere instances
/// become purgeable by the clock alone).
const POLL: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true.
pub async fn run(
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<dyn InstanceStore>,
    retention: Retention,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let q = queue.clone();
        let s = spool.clone();
        let purged =
            tokio::task::spawn_blocking(move || purge_once(q.as_ref(), s.as_ref(), retention))
                .await
                .unwrap_or(0);
        if purged > 0 {
            debug!(purged, "spool files purged");
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One round: up to [`BATCH`] purgeable instances marked done and their files removed.
/// Returns how many were marked done.
pub(crate) fn purge_once(
    queue: &dyn ForwardQueue,
    spool: &dyn InstanceStore,
    retention: Retention,
) -> usize {
    let now = UnixMillis::now();
    let ids = match queue.purgeable(now, retention, BATCH) {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "cannot list purgeable instances");
            return 0;
        }
    };
    let mut purged = 0;
    for id in ids {
        // Done first: from here on a retry of its jobs is refused.
        if let Err(e) = queue.mark_done(&id, now) {
            // A retry slipped in since the listing: the files are needed again.
            debug!(id = %id, error = %e, "not purged");
            continue;
        }
        purged += 1;
        match id.parse::<InstanceId>() {
            Ok(parsed) => {
                if let Err(e) = spool.remove(&parsed) {
                    warn!(id = %id, error = %e, "cannot remove spool files; start-up recovery will retry");
                }
            }
            Err(e) => warn!(id = %id, error = %e, "instance id is not a spool id; nothing removed"),
        }
    }
    metrics::counter!("radroute_instances_purged_total").increment(purged as u64);
    purged
}

//! Purging: spool files are removed once every destination of their instance has them (after
//! the configured retention). Dead letters keep their files so they can be retried.

use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{ForwardQueue, UnixMillis};
use radroute_spool::{InstanceId, Spool};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

/// Runs until `stop` turns true.
pub async fn run(
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<Spool>,
    retention: Duration,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let q = queue.clone();
        let s = spool.clone();
        let purged = tokio::task::spawn_blocking(move || purge_once(q.as_ref(), &s, retention))
            .await
            .unwrap_or(0);
        if purged > 0 {
            debug!(purged, "spool files purged");
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

fn purge_once(queue: &dyn ForwardQueue, spool: &Spool, retention: Duration) -> usize {
    let now = UnixMillis::now();
    let ids = match queue.purgeable(now, retention, 256) {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "cannot list purgeable instances");
            return 0;
        }
    };
    let mut purged = 0;
    for id in ids {
        if let Ok(parsed) = id.parse::<InstanceId>() {
            if let Err(e) = spool.remove(&parsed) {
                warn!(id = %id, error = %e, "cannot remove spool files");
                continue;
            }
        }
        match queue.mark_done(&id, now) {
            Ok(()) => purged += 1,
            Err(e) => warn!(id = %id, error = %e, "cannot mark instance done"),
        }
    }
    metrics::counter!("radroute_instances_purged_total").increment(purged as u64);
    purged
}

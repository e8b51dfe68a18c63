//! Liveness of the running node: the forward-queue watchdog and task supervision.
//!
//! A forward worker leases jobs (`in_flight`) and records their outcome when the C-STORE is
//! answered. If the worker dies or the completion is lost, nothing else ever touches those
//! jobs: start-up recovery would requeue them, but a node runs for months. The watchdog returns
//! leases older than any batch can legitimately take to the queue
//! ([`ForwardQueue::release_stale`]), logs and counts them.
//!
//! [`supervise`] restarts a long-running task that panicked (a forward worker), so a
//! destination is never silently left without workers; a task that returns normally (stop,
//! destination removed) is not restarted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{ForwardQueue, UnixMillis};
use tokio::sync::{watch, Notify};
use tracing::{error, warn};

/// How often the watchdog looks for stale leases (a cheap indexed update).
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Pause before a panicked task is started again, so a task that panics at once does not spin.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The longest a forward batch can hold its leases when every step runs into its timeout:
/// connecting, negotiating and releasing the association, and one exchange per instance,
/// plus a margin. A lease older than this for the slowest destination is stale.
pub fn stale_after(destinations: &[radroute_forward::Destination], batch_size: usize) -> Duration {
    destinations
        .iter()
        .map(|d| d.connect_timeout + d.io_timeout * (batch_size.max(1) as u32 + 2))
        .max()
        .unwrap_or_default()
        + Duration::from_secs(60)
}

/// The stale-lease bound of the running configuration: `[queue] stale_lease_secs`, or when it
/// is 0, [`stale_after`] of its destinations.
pub fn bound(
    cfg: &radroute_config::Config,
    destinations: &[radroute_forward::Destination],
) -> Duration {
    match cfg.queue.stale_lease_secs {
        0 => stale_after(destinations, cfg.queue.batch_size),
        secs => Duration::from_secs(secs),
    }
}

/// Runs until `stop` turns true: every [`CHECK_EVERY`], jobs leased more than `stale_after`
/// ago (read from `bound` each time, so a reload can change it) go back to `queued`, and the
/// forward workers are woken to send them.
pub async fn run(
    queue: Arc<dyn ForwardQueue>,
    bound: watch::Receiver<Duration>,
    wake_forward: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let stale = *bound.borrow();
        let q = queue.clone();
        let released = tokio::task::spawn_blocking(move || {
            let now = UnixMillis::now();
            q.release_stale(UnixMillis(now.0.saturating_sub(millis(stale))), now)
        })
        .await;
        match released {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                warn!(
                    jobs = n,
                    leased_for_more_than_secs = stale.as_secs(),
                    "released stale forward leases (a worker died or lost a completion): queued again"
                );
                metrics::counter!("radroute_queue_stale_released_total").increment(n);
                wake_forward.notify_waiters();
            }
            Ok(Err(e)) => warn!(error = %e, "cannot release stale forward leases"),
            Err(e) => warn!(error = %e, "stale lease check failed"),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs the task that `start` makes until it returns; when it panics, logs and counts it
/// (`radroute_task_restarts_total{task}`) and starts a new one after [`RESTART_DELAY`],
/// unless `stop` turned true.
pub async fn supervise<F, Fut>(task: &'static str, stop: watch::Receiver<bool>, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let Err(e) = tokio::spawn(start()).await else {
            return;
        };
        if *stop.borrow() || !e.is_panic() {
            return;
        }
        error!(task, error = %e, "task panicked: starting it again");
        metrics::counter!("radroute_task_restarts_total", "task" => task).increment(1);
        tokio::time::sleep(RESTART_DELAY).await;
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_is_started_again_a_returning_one_is_not() {
        let (_stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            supervise("test", stop, move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        panic!("worker bug {n}");
                    }
                }
            }),
        )
        .await
        .expect("supervision ends when the task returns");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "two restarts after two panics"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_restart_after_stop() {
        let (stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let stop_tx2 = stop_tx.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            supervise("test", stop, move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stop_tx2.send(true);
                async { panic!("panics while stopping") }
            }),
        )
        .await
        .expect("supervision ends");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(stop_tx);
    }

    #[test]
    fn the_stale_bound_covers_a_whole_batch_of_timeouts() {
        let mut d = radroute_forward::Destination::new("pacs", "PACS", "127.0.0.1:104", "RADROUTE");
        d.connect_timeout = Duration::from_secs(10);
        d.io_timeout = Duration::from_secs(60);
        assert_eq!(
            stale_after(&[d], 32),
            Duration::from_secs(10 + 60 * 34 + 60)
        );
        assert_eq!(stale_after(&[], 32), Duration::from_secs(60));
    }
}

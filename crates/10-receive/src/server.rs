//! The accept loop: bounded associations, graceful shutdown.
//!
//! Each accepted connection takes a permit from a semaphore sized `max_associations`; the permit
//! moves into the association's task and is released when it ends. Without a permit, the
//! connection is answered with a transient A-ASSOCIATE-RJ. On shutdown the listener stops, and
//! associations in flight get `shutdown_grace` to finish (a C-STORE in progress completes and is
//! answered) before they are aborted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::association::run_association;
use crate::options::ScpOptions;
use crate::reject::reject_over_limit;
use crate::StoreHandler;

/// Why the SCP stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Accepting connections kept failing.
    #[error("accepting connections on {addr} failed repeatedly: {source}")]
    Accept {
        /// Listening address.
        addr: String,
        /// Last error.
        #[source]
        source: std::io::Error,
    },
}

/// Open associations per calling AE title, for `max_associations_per_ae`.
#[derive(Debug, Default)]
struct PerAeCounter {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open association of a calling AE; released on drop.
struct PerAeSlot {
    counter: Arc<PerAeCounter>,
    ae: String,
}

impl PerAeCounter {
    fn acquire(self: &Arc<Self>, ae: &str, limit: usize) -> Option<PerAeSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ae.to_string()).or_insert(0);
        if *n >= limit {
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

/// Serves associations on `listener` until `shutdown` resolves, then drains.
///
/// `options` may change while serving (configuration reload): each new association negotiates
/// with the options current when it is accepted; associations in flight keep theirs. The
/// association limit is fixed at start.
pub async fn serve<H: StoreHandler>(
    listener: TcpListener,
    options: watch::Receiver<Arc<ScpOptions>>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let initial = options.borrow().clone();
    let limit = Arc::new(Semaphore::new(initial.max_associations.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let next_id = AtomicU64::new(1);
    let per_ae = Arc::new(PerAeCounter::default());
    let mut tasks = JoinSet::new();
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    info!(listen = %local, ae_title = %initial.ae_title, max_associations = initial.max_associations, "DICOM SCP listening");
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished association tasks so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(e) => {
                // Transient (EMFILE, ECONNABORTED): back off and keep serving.
                if backoff > Duration::from_secs(30) {
                    return Err(ServeError::Accept {
                        addr: local,
                        source: e,
                    });
                }
                warn!(error = %e, "accept failed; retrying in {:?}", backoff);
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let options = options.borrow().clone();
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let handler = handler.clone();
                let stop = stop_rx.clone();
                let per_ae = per_ae.clone();
                tasks.spawn(async move {
                    // Per-AE limit: the calling AE title is read (peeked, not consumed) from
                    // the A-ASSOCIATE-RQ before negotiation, so an over-limit modality gets a
                    // transient rejection like the global limit.
                    let mut _slot = None;
                    if options.max_associations_per_ae > 0 && options.tls.is_none() {
                        let calling = crate::reject::peek_calling_ae(&socket, Duration::from_secs(5)).await;
                        if let Some(ae) = calling {
                            match per_ae.acquire(&ae, options.max_associations_per_ae) {
                                Some(slot) => _slot = Some(slot),
                                None => {
                                    metrics::counter!("radroute_associations_total", "outcome" => "rejected_ae_limit").increment(1);
                                    warn!(assoc = id, %peer, calling_ae = %ae, limit = options.max_associations_per_ae, "per-AE association limit reached: A-ASSOCIATE-RJ (transient)");
                                    let _ = reject_over_limit(socket, Duration::from_secs(10)).await;
                                    drop(permit);
                                    return;
                                }
                            }
                        }
                    }
                    run_association(id, socket, peer, options, handler, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                metrics::counter!("radroute_associations_total", "outcome" => "rejected_limit")
                    .increment(1);
                warn!(assoc = id, %peer, limit = options.max_associations, "association limit reached: A-ASSOCIATE-RJ (transient)");
                let timeout = options.idle_timeout.min(Duration::from_secs(10));
                tasks.spawn(async move {
                    if let Err(e) = reject_over_limit(socket, timeout).await {
                        warn!(assoc = id, %peer, error = %e, "rejecting over-limit association failed");
                    }
                });
            }
        }
    }
    info!(
        in_flight = tasks.len(),
        "SCP stopping: no new associations; draining"
    );
    let _ = stop_tx.send(true);
    let grace = options.borrow().shutdown_grace;
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            remaining = tasks.len(),
            "associations still open after {:?}: aborting them", grace
        );
        tasks.shutdown().await;
    }
    Ok(())
}

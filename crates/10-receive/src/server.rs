//! The accept loop: bounded negotiation, bounded associations, graceful shutdown.
//!
//! Each accepted connection takes a place in the negotiating pool (`max_negotiating`; past it,
//! the connection is closed at once) and negotiates within the ARTIM timer
//! (`crate::negotiate`); only then does it take an association slot (`max_associations`, and
//! the per-AE limit; see `crate::admission`), held until the association ends. On shutdown the
//! listener stops, and associations in flight get `shutdown_grace` to finish (a C-STORE in
//! progress completes and is answered) before they are aborted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::budget::MemoryBudget;
use crate::negotiate::{run_connection, Context};
use crate::options::ScpOptions;
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

/// Serves associations on `listener` until `shutdown` resolves, then drains.
///
/// `options` may change while serving (configuration reload): each new association negotiates
/// with the options current when it is accepted; associations in flight keep theirs. The
/// association limit, the negotiating pool and the receive memory budget are fixed at start.
pub async fn serve<H: StoreHandler>(
    listener: TcpListener,
    options: watch::Receiver<Arc<ScpOptions>>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let initial = options.borrow().clone();
    let admission = Arc::new(Admission::new(initial.max_associations));
    let negotiating = Arc::new(Semaphore::new(initial.max_negotiating.max(1)));
    let budget = MemoryBudget::new(initial.receive_memory_bytes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let next_id = AtomicU64::new(1);
    let mut tasks = JoinSet::new();
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    info!(
        listen = %local,
        ae_title = %initial.ae_title,
        max_associations = initial.max_associations,
        max_negotiating = initial.max_negotiating,
        receive_memory_mb = initial.receive_memory_bytes >> 20,
        "DICOM SCP listening"
    );
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
        let Ok(place) = negotiating.clone().try_acquire_owned() else {
            metrics::counter!("radroute_associations_total", "outcome" => "refused_negotiating_limit")
                .increment(1);
            warn!(assoc = id, %peer, limit = initial.max_negotiating, "too many connections negotiating: closed at once");
            drop(socket);
            continue;
        };
        let ctx = Context {
            id,
            peer,
            options: options.borrow().clone(),
            handler: handler.clone(),
            stop: stop_rx.clone(),
            admission: admission.clone(),
            budget: budget.clone(),
        };
        tasks.spawn(run_connection(ctx, socket, place));
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

//! Wiring of the data path, in one place: SCP → store handler (spool + queue) → processing
//! (label, route) → one forward worker per destination → purge; plus the admin HTTP surface and
//! signal handling. Start-up recovers what a crash left behind before anything is accepted.

mod edits;
mod forwarder;
pub mod label;
mod process;
mod purge;
mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use radroute_queue::{ForwardQueue, SqliteQueue, UnixMillis};
use radroute_spool::{FileKind, Spool};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::config::Config;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The spool directory cannot be used.
    #[error("spool {path}: {source}")]
    Spool {
        /// Directory.
        path: String,
        /// Cause.
        #[source]
        source: radroute_spool::SpoolError,
    },
    /// The queue database cannot be opened.
    #[error("queue {path}: {source}")]
    Queue {
        /// Database file.
        path: String,
        /// Cause.
        #[source]
        source: radroute_queue::QueueError,
    },
    /// A listener cannot bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The async runtime cannot start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Everything the admin surface and the workers share.
pub struct NodeState {
    /// Instance files.
    pub spool: Arc<Spool>,
    /// Forward queue.
    pub queue: Arc<dyn ForwardQueue>,
    /// True when labelling is configured and its model loaded.
    pub model_loaded: Option<bool>,
}

/// Opens the spool and the queue, and recovers what a crash left: in-flight jobs go back to the
/// queue, received-but-unprocessed instances are processed again, and spool files that never
/// made it into the queue (never acknowledged) are removed.
pub fn open_storage(cfg: &Config) -> Result<(Arc<Spool>, Arc<SqliteQueue>), NodeError> {
    let spool = Spool::open(&cfg.spool.dir).map_err(|source| NodeError::Spool {
        path: cfg.spool.dir.display().to_string(),
        source,
    })?;
    let qpath = cfg.queue_path();
    let queue =
        SqliteQueue::open(&qpath, cfg.retry_policy()).map_err(|source| NodeError::Queue {
            path: qpath.display().to_string(),
            source,
        })?;
    Ok((Arc::new(spool), Arc::new(queue)))
}

fn recover(spool: &Spool, queue: &dyn ForwardQueue) {
    match queue.recover(UnixMillis::now()) {
        Ok(report) => info!(
            requeued_jobs = report.requeued_jobs,
            unprocessed_instances = report.received_instances,
            "queue recovered"
        ),
        Err(e) => warn!(error = %e, "queue recovery failed"),
    }
    match spool.list(FileKind::Incoming) {
        Ok(ids) => {
            let mut orphans = 0;
            for id in ids {
                if matches!(queue.instance(id.as_str()), Ok(None)) {
                    // Written but never committed to the queue, so never acknowledged: the
                    // sender still has it and will send it again.
                    let _ = spool.remove(&id);
                    orphans += 1;
                }
            }
            if orphans > 0 {
                warn!(orphans, "removed spool files that were never acknowledged");
            }
        }
        Err(e) => warn!(error = %e, "cannot list spool"),
    }
}

/// `radroute serve`: runs the node until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("radroute")
        .build()
        .map_err(NodeError::Runtime)?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<(), NodeError> {
    let (spool, queue) = open_storage(&cfg)?;
    let queue: Arc<dyn ForwardQueue> = queue;
    recover(&spool, queue.as_ref());
    let rules = cfg.rules().map_err(NodeError::Config)?;
    let scp_options = cfg.scp_options().map_err(NodeError::Config)?;

    let labeler: Option<Arc<dyn label::Labeler>> = None;
    let state = Arc::new(NodeState {
        spool: spool.clone(),
        queue: queue.clone(),
        model_loaded: None,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let wake_processing = Arc::new(Notify::new());
    let wake_forward = Arc::new(Notify::new());
    let wake_purge = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();

    // Admin HTTP first, so /healthz answers while the rest starts.
    if !cfg.admin.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&cfg.admin.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: cfg.admin.listen.clone(),
                source,
            })?;
        let router = crate::admin::router(state.clone());
        let mut stop = stop_rx.clone();
        info!(listen = %cfg.admin.listen, "admin HTTP listening");
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                warn!(error = %e, "admin HTTP stopped");
            }
        });
    }

    let processing = Arc::new(process::Processing {
        spool: spool.clone(),
        queue: queue.clone(),
        rules: RwLock::new(Arc::new(rules)),
        labeler,
        wake_forward: wake_forward.clone(),
    });
    tasks.spawn(
        processing
            .clone()
            .run(wake_processing.clone(), 2, stop_rx.clone()),
    );
    for dest in cfg.destinations() {
        tasks.spawn(forwarder::run(
            dest,
            queue.clone(),
            spool.clone(),
            cfg.queue.batch_size,
            wake_forward.clone(),
            wake_purge.clone(),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(purge::run(
        queue.clone(),
        spool.clone(),
        Duration::from_secs(cfg.spool.retention_secs),
        wake_purge.clone(),
        stop_rx.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(&cfg.node.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: cfg.node.listen.clone(),
            source,
        })?;
    let handler = Arc::new(store::SpoolingHandler {
        spool: spool.clone(),
        queue: queue.clone(),
        wake_processing: wake_processing.clone(),
        min_free_bytes: cfg.node.min_free_mb << 20,
    });
    let scp = radroute_receive::serve(listener, Arc::new(scp_options), handler, shutdown_signal());
    if let Err(e) = scp.await {
        warn!(error = %e, "SCP stopped");
    }
    info!("stopping workers");
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        warn!("workers did not stop within 30 s");
    }
    info!("radroute stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown requested");
}

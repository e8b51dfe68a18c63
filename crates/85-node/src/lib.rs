//! Wiring of the data path, in one place: SCP → store handler (spool + queue) → processing
//! (label, route) → one forward worker per destination → purge; plus the admin HTTP surface and
//! signal handling. Start-up recovers what a crash left behind before anything is accepted.

mod backlog;
mod classify;
mod edits;
mod forwarder;
mod handoff;
pub mod label;
mod process;
mod purge;
mod scp_exit;
mod recover;
mod store;
mod watchdog;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use radroute_queue::{ForwardQueue, SqliteQueue};
use radroute_spool::Spool;
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
    /// The SCP's accept loop gave up.
    #[error("DICOM SCP stopped: {0}")]
    Scp(#[source] radroute_receive::ServeError),
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

/// Opens the spool and the queue. `serve` then recovers what a crash or a lost database left
/// (node/recover.rs): the spool is the source of truth.
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
    {
        let (spool, queue) = (spool.clone(), queue.clone());
        let ae_title = cfg.node.ae_title.clone();
        tokio::task::spawn_blocking(move || {
            recover::recover(&spool, queue.as_ref(), &ae_title)
        })
        .await
        .map_err(|e| NodeError::Config(format!("start-up recovery failed: {e}")))?;
    }
    let rules = cfg.rules().map_err(NodeError::Config)?;
    let scp_options = cfg.scp_options().map_err(NodeError::Config)?;

    // A model that does not load must not stop the images: they flow unlabelled, /readyz
    // says why, and the log has the reason.
    let mut model_loaded = None;
    let mut labeler: Option<Arc<dyn label::Labeler>> = None;
    if let Some(dir) = cfg.model_dir() {
        let cfg_classify = cfg.classify.clone();
        let loaded =
            tokio::task::spawn_blocking(move || classify::OnnxLabeler::load(&cfg_classify, &dir))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        match loaded {
            Ok(l) => {
                labeler = Some(Arc::new(l));
                model_loaded = Some(true);
            }
            Err(e) => {
                warn!(error = %e, "classification disabled: instances are forwarded unlabelled");
                model_loaded = Some(false);
            }
        }
    }
    let state = Arc::new(NodeState {
        spool: spool.clone(),
        queue: queue.clone(),
        model_loaded,
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
        let router = crate::admin::router_with(state.clone(), &cfg.admin);
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

    let handoff = Arc::new(handoff::Handoff::new(cfg.spool.handoff_mb << 20));
    let backlog = Arc::new(backlog::Backlog::default());
    let processing = Arc::new(process::Processing {
        spool: spool.clone(),
        queue: queue.clone(),
        rules: RwLock::new(Arc::new(rules)),
        labeler,
        wake_forward: wake_forward.clone(),
        studies: Default::default(),
        handoff: handoff.clone(),
        backlog: backlog.clone(),
    });
    {
        let (processing, wake, stop) =
            (processing.clone(), wake_processing.clone(), stop_rx.clone());
        let in_flight = processing_in_flight(&cfg);
        let start = move || {
            processing
                .clone()
                .run(wake.clone(), in_flight, stop.clone())
        };
        tasks.spawn(watchdog::supervise("processing", stop_rx.clone(), start));
    }
    let mut workers = ForwardWorkers {
        senders: HashMap::new(),
        running: HashMap::new(),
        queue: queue.clone(),
        spool: spool.clone(),
        batch_size: cfg.queue.batch_size,
        wake_forward: wake_forward.clone(),
        wake_purge: wake_purge.clone(),
        stop: stop_rx.clone(),
    };
    let destinations = cfg.destinations().map_err(NodeError::Config)?;
    let (stale_lease_tx, stale_lease) = watch::channel(watchdog::bound(&cfg, &destinations));
    tasks.spawn(watchdog::run(
        queue.clone(),
        stale_lease,
        wake_forward.clone(),
        stop_rx.clone(),
    ));
    workers.apply(destinations, &mut tasks);
    tasks.spawn(purge::run(
        queue.clone(),
        spool.clone(),
        radroute_queue::Retention {
            finished: Duration::from_secs(cfg.spool.retention_secs),
            dead_letters: Duration::from_secs(cfg.spool.dead_letter_retention_secs),
        },
        wake_purge.clone(),
        stop_rx.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(&cfg.node.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: cfg.node.listen.clone(),
            source,
        })?;
    let min_free_bytes = Arc::new(std::sync::atomic::AtomicU64::new(
        cfg.node.min_free_mb << 20,
    ));
    let max_unprocessed = Arc::new(std::sync::atomic::AtomicUsize::new(
        cfg.node.max_unprocessed,
    ));
    let handler = Arc::new(store::SpoolingHandler {
        spool: spool.clone(),
        queue: queue.clone(),
        wake_processing: wake_processing.clone(),
        min_free_bytes: min_free_bytes.clone(),
        handoff,
        backlog,
        max_unprocessed: max_unprocessed.clone(),
        max_inflated: cfg.node.max_instance_mb << 20,
    });
    let (scp_tx, scp_rx) = watch::channel(Arc::new(scp_options));
    let scp = radroute_receive::serve(listener, scp_rx, handler, shutdown_signal());
    let reload = reload_on_sighup(
        cfg.source.clone(),
        Reloadable {
            processing: processing.clone(),
            scp: scp_tx,
            min_free_bytes,
            max_unprocessed,
            stale_lease: stale_lease_tx,
        },
        workers,
    );
    let outcome = tokio::select! {
        result = scp => scp_exit::scp_outcome(result),
        _ = reload => Ok(()),
    };
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
    outcome
}

/// Instances the processing step works on at once: `[classify] workers` decode at a time; with
/// a model, up to `max_batch` more wait for the classifier, so it can batch across
/// associations while the decoders go on.
fn processing_in_flight(cfg: &Config) -> usize {
    let workers = cfg.classify.workers.max(1);
    if cfg.model_dir().is_some() {
        workers + cfg.classify.max_batch.max(1)
    } else {
        workers
    }
}

/// The forward workers, `associations` per destination, so a reload can add, change or remove
/// them.
struct ForwardWorkers {
    senders: HashMap<String, watch::Sender<Option<radroute_forward::Destination>>>,
    /// Worker slots started per destination (a slot at or past `associations` stops itself).
    running: HashMap<String, usize>,
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<Spool>,
    batch_size: usize,
    wake_forward: Arc<Notify>,
    wake_purge: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

impl ForwardWorkers {
    /// Makes the running workers match `destinations`: new ones start, changed ones pick up
    /// their new settings before their next batch, removed ones stop (their queued jobs stay
    /// in the queue until the destination is configured again).
    fn apply(
        &mut self,
        destinations: Vec<radroute_forward::Destination>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let names: Vec<String> = destinations.iter().map(|d| d.name.clone()).collect();
        for dest in destinations {
            if let Some(tx) = self.senders.get(&dest.name) {
                tx.send_if_modified(|current| {
                    let changed = current.as_ref() != Some(&dest);
                    *current = Some(dest.clone());
                    changed
                });
                // More associations allowed: start the extra workers (fewer: the surplus
                // ones see their slot gone and stop after their batch).
                self.spawn_workers(&dest, tasks);
                continue;
            }
            let (tx, _) = watch::channel(Some(dest.clone()));
            self.senders.insert(dest.name.clone(), tx);
            self.spawn_workers(&dest, tasks);
        }
        self.senders.retain(|name, tx| {
            let keep = names.contains(name);
            if !keep {
                let _ = tx.send(None);
            }
            keep
        });
        self.running.retain(|name, _| names.contains(name));
    }

    /// Starts the workers `dest` lacks: slots from those already running up to its
    /// `associations`.
    fn spawn_workers(
        &mut self,
        dest: &radroute_forward::Destination,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let Some(tx) = self.senders.get(&dest.name) else {
            return;
        };
        let running = self.running.entry(dest.name.clone()).or_insert(0);
        for slot in *running..dest.associations {
            // A worker that panics is started again (its leases are released by the watchdog).
            let (dest_rx, queue, spool) = (tx.subscribe(), self.queue.clone(), self.spool.clone());
            let (wake, wake_purge, stop) = (
                self.wake_forward.clone(),
                self.wake_purge.clone(),
                self.stop.clone(),
            );
            let batch_size = self.batch_size;
            let start = move || {
                forwarder::run(
                    slot,
                    dest_rx.clone(),
                    queue.clone(),
                    spool.clone(),
                    batch_size,
                    wake.clone(),
                    wake_purge.clone(),
                    stop.clone(),
                )
            };
            tasks.spawn(watchdog::supervise("forward", self.stop.clone(), start));
        }
        *running = dest.associations;
    }
}

/// What a reload can change while the node runs.
struct Reloadable {
    processing: Arc<process::Processing>,
    scp: watch::Sender<Arc<radroute_receive::ScpOptions>>,
    min_free_bytes: Arc<std::sync::atomic::AtomicU64>,
    max_unprocessed: Arc<std::sync::atomic::AtomicUsize>,
    /// The watchdog's stale-lease bound (depends on the destinations' timeouts).
    stale_lease: watch::Sender<Duration>,
}

/// Reloads the configuration on SIGHUP: routing rules, the SCP's negotiation policy (allow-list,
/// SOP classes, transfer syntaxes, TLS), the disk watermark and destinations. Associations in flight are not touched. A
/// file with errors is refused with a log line and the running configuration stays. Listen
/// addresses, the association limit, the spool and the queue need a restart.
async fn reload_on_sighup(path: std::path::PathBuf, live: Reloadable, mut workers: ForwardWorkers) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot install the SIGHUP handler: configuration reload disabled");
            return std::future::pending().await;
        };
        let mut tasks = tokio::task::JoinSet::new();
        while hup.recv().await.is_some() {
            info!(file = %path.display(), "SIGHUP: reloading configuration");
            let cfg = match crate::config::load(Some(&path)) {
                Ok(cfg) => cfg,
                Err(e) => {
                    warn!(error = %e, "configuration reload refused; keeping the running configuration");
                    continue;
                }
            };
            let (Ok(rules), Ok(options), Ok(destinations)) =
                (cfg.rules(), cfg.scp_options(), cfg.destinations())
            else {
                warn!("configuration reload refused; keeping the running configuration");
                continue;
            };
            *live
                .processing
                .rules
                .write()
                .unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
            let _ = live.scp.send(Arc::new(options));
            live.min_free_bytes.store(
                cfg.node.min_free_mb << 20,
                std::sync::atomic::Ordering::Relaxed,
            );
            live.max_unprocessed.store(
                cfg.node.max_unprocessed,
                std::sync::atomic::Ordering::Relaxed,
            );
            let _ = live.stale_lease.send(watchdog::bound(&cfg, &destinations));
            workers.apply(destinations, &mut tasks);
            metrics::counter!("radroute_config_reloads_total").increment(1);
            info!(
                destinations = cfg.destinations.len(),
                routes = cfg.routes.len(),
                "configuration reloaded"
            );
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
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

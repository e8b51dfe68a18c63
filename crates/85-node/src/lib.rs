//! radroute's daemon: the data path wired into one running node, in one place: SCP → store
//! handler (spool + queue) → processing (label, route) → one forward worker per destination →
//! purge, plus the watchdog. Start-up recovers what a crash left behind before anything is
//! accepted.
//!
//! The node is built from a [`Config`] (radroute-config) and knows nothing of files, signals
//! or HTTP: [`Topology::from_config`] is the one place a configuration becomes the node's live
//! settings, used by start-up ([`Node::open`], [`Node::run`]) and by every reload (each
//! [`Config`] sent to [`Node::run`]'s channel). The binary loads the file, handles the signals
//! and runs extra services beside the node ([`Node::spawn_service`]: the admin HTTP surface,
//! radroute-admin, which reads [`NodeState`]).

mod backlog;
mod classify;
pub mod cluster;
mod edits;
mod evidence;
mod forward_gate;
mod forward_limit;
mod forwarder;
mod handoff;
pub mod inspect;
pub mod label;
mod process;
mod purge;
pub mod reachability;
mod recover;
mod scp_exit;
mod store;
mod studies;
pub mod telemetry;
mod watchdog;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use radroute_config::Config;
use radroute_queue::{ForwardQueue, SqliteQueue};
use radroute_spool::{InstanceStore, Spool};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tracing::{info, warn};

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
    /// Instance bytes: the local spool, or PostgreSQL in cluster mode (radroute-spool's
    /// `InstanceStore`; readers that want a file use `local_file`).
    pub spool: Arc<dyn InstanceStore>,
    /// Forward queue.
    pub queue: Arc<dyn ForwardQueue>,
    /// True when labelling is configured and its model loaded.
    pub model_loaded: Option<bool>,
    /// Cluster mode (`[cluster]`): this node's id, the shared database, the cluster's status.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// The audit trail: audit messages (when `[audit]` names a repository) and the record of
    /// operator actions.
    pub audit: Arc<radroute_audit::Audit>,
    /// Model, live destinations and rules, evidence and the rule tester, for the console.
    pub inspect: Arc<inspect::Inspect>,
}

/// Opens the spool and the queue. `serve` then recovers what a crash or a lost database left
/// (node/recover.rs): the spool is the source of truth.
pub fn open_storage(cfg: &Config) -> Result<(Arc<dyn InstanceStore>, Arc<SqliteQueue>), NodeError> {
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
    let spool: Arc<dyn InstanceStore> = Arc::new(spool);
    Ok((spool, Arc::new(queue)))
}

/// The node's settings that start-up and every reload derive from a [`Config`]: the one
/// translation of a configuration into the running node (as Vector builds and rebuilds its
/// topology in one place). Listen addresses, the association limit, the spool, the queue and
/// the model are read once at start-up and need a restart.
pub struct Topology {
    /// Routing rules.
    rules: radroute_route::RuleSet,
    /// The SCP's negotiation policy (allow-list, SOP classes, transfer syntaxes, TLS).
    scp: radroute_receive::ScpOptions,
    /// Forward destinations.
    destinations: Vec<radroute_forward::Destination>,
    /// The watchdog's stale-lease bound (depends on the destinations' timeouts).
    stale_lease: Duration,
    /// Disk watermark below which stores are refused.
    min_free_bytes: u64,
    /// Instances waiting for processing past which C-STORE responses wait.
    max_unprocessed: usize,
    /// `[routing]` and `[[routes]]` as TOML, for the console.
    rules_text: String,
}

impl Topology {
    /// Builds the node's settings from `cfg`; an error names what cannot be used.
    pub fn from_config(cfg: &Config) -> Result<Topology, String> {
        let rules = cfg.rules()?;
        let scp = cfg.scp_options()?;
        let destinations = cfg.destinations()?;
        Ok(Topology {
            rules,
            scp,
            stale_lease: watchdog::bound(cfg, &destinations),
            destinations,
            min_free_bytes: cfg.node.min_free_mb << 20,
            max_unprocessed: cfg.node.max_unprocessed,
            rules_text: inspect::rules_text(cfg),
        })
    }
}

/// A node that has opened its storage, recovered and loaded its model, but accepts nothing
/// yet: [`Node::run`] starts the workers and the SCP. Between the two the binary starts the
/// services that run beside it ([`Node::spawn_service`]).
pub struct Node {
    cfg: Config,
    state: Arc<NodeState>,
    labeler: Option<Arc<dyn label::Labeler>>,
    topology: Topology,
    stop_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Opens the spool and the queue, recovers what a crash or a lost database left
    /// (recover.rs), builds the [`Topology`] and loads the model.
    pub async fn open(cfg: Config) -> Result<Node, NodeError> {
        // Cluster mode: everything durable is in PostgreSQL (cluster/mod.rs).
        let cluster = match &cfg.cluster {
            Some(c) => Some(Arc::new(cluster::open(&cfg, c).await?)),
            None => None,
        };
        let (spool, queue): (Arc<dyn InstanceStore>, Arc<dyn ForwardQueue>) = match &cluster {
            Some(c) => (c.store.clone(), c.queue.clone()),
            None => {
                let (spool, queue) = open_storage(&cfg)?;
                (spool, queue)
            }
        };
        {
            let (spool, queue) = (spool.clone(), queue.clone());
            let ae_title = cfg.node.ae_title.clone();
            let clustered = cluster.is_some();
            tokio::task::spawn_blocking(move || {
                if clustered {
                    // Peers write and purge meanwhile: only this node's own leases.
                    cluster::recover(queue.as_ref());
                } else {
                    recover::recover(spool.as_ref(), queue.as_ref(), &ae_title);
                }
            })
            .await
            .map_err(|e| NodeError::Config(format!("start-up recovery failed: {e}")))?;
        }
        let topology = Topology::from_config(&cfg).map_err(NodeError::Config)?;

        // A model that does not load must not stop the images: they flow unlabelled, /readyz
        // says why, and the log has the reason.
        let mut model_loaded = None;
        let mut model = None;
        let mut labeler: Option<Arc<dyn label::Labeler>> = None;
        if let Some(dir) = cfg.model_dir() {
            let cfg_classify = cfg.classify.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                classify::OnnxLabeler::load(&cfg_classify, &dir)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match loaded {
                Ok(l) => {
                    model = Some(l.summary());
                    labeler = Some(Arc::new(l));
                    model_loaded = Some(true);
                }
                Err(e) => {
                    warn!(error = %e, "classification disabled: instances are forwarded unlabelled");
                    model_loaded = Some(false);
                }
            }
        }
        let audit = radroute_audit::Audit::start(
            radroute_audit::AppIdentity::local(&cfg.node.ae_title, cfg.audit.site_id.clone()),
            cfg.audit.sink_settings(&cfg).map_err(NodeError::Config)?,
        )
        .map_err(|e| NodeError::Config(e.to_string()))?;
        // Evidence for the console beside the queue database; the node runs without it.
        let evidence_path = cfg.queue_path().with_file_name("evidence.sqlite");
        let evidence = match radroute_evidence::EvidenceStore::open(&evidence_path) {
            Ok(store) => Some(Arc::new(store)),
            Err(e) => {
                warn!(error = %e, "no evidence for the console (scores, model input, decisions)");
                None
            }
        };
        let queue: Arc<dyn ForwardQueue> = match &evidence {
            Some(store) => Arc::new(evidence::EvidenceQueue::new(queue, store.clone())),
            None => queue,
        };
        let inspect = Arc::new(inspect::Inspect::new(
            cfg.node.ae_title.clone(),
            model,
            evidence,
            labeler.clone(),
            &topology,
        ));
        let state = Arc::new(NodeState {
            spool,
            queue,
            model_loaded,
            cluster,
            audit,
            inspect,
        });
        let (stop_tx, _) = watch::channel(false);
        Ok(Node {
            cfg,
            state,
            labeler,
            topology,
            stop_tx,
            tasks: JoinSet::new(),
        })
    }

    /// What the admin surface reads: spool, queue, model state.
    pub fn state(&self) -> Arc<NodeState> {
        self.state.clone()
    }

    /// Turns true when the node stops; services started beside it stop on it.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    /// Runs `service` beside the node (the admin HTTP server): it should end when
    /// [`Node::stopping`] turns true; the node waits for it with its own workers (30 s at
    /// most) when it stops.
    pub fn spawn_service(&mut self, service: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(service);
    }

    /// Starts processing, the forward workers, the watchdog, the purger and the DICOM SCP,
    /// and runs until `shutdown` resolves (the SCP stops accepting, then the workers stop) or
    /// the SCP gives up. Each [`Config`] received on `reloads` is applied while the node runs,
    /// through [`Topology::from_config`] like start-up: routing rules, the SCP's negotiation
    /// policy, the disk watermark, the backlog bound and destinations. Associations in flight
    /// are not touched. A configuration that cannot be used is refused with a log line and
    /// the running one stays.
    pub async fn run(
        self,
        mut reloads: mpsc::Receiver<Config>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let Node {
            cfg,
            state,
            labeler,
            topology,
            stop_tx,
            mut tasks,
        } = self;
        let (spool, queue) = (state.spool.clone(), state.queue.clone());
        let stop_rx = stop_tx.subscribe();
        let wake_processing = Arc::new(Notify::new());
        let wake_forward = Arc::new(Notify::new());
        let wake_purge = Arc::new(Notify::new());

        let handoff = Arc::new(handoff::Handoff::new(cfg.spool.handoff_mb << 20));
        let backlog = Arc::new(backlog::Backlog::default());
        let processing = Arc::new(process::Processing {
            spool: spool.clone(),
            queue: queue.clone(),
            rules: RwLock::new(Arc::new(topology.rules.clone())),
            labeler,
            wake_forward: wake_forward.clone(),
            // Cluster mode: one study state for every node (a study lease), else in memory.
            studies: match &state.cluster {
                Some(c) => c.studies.clone() as Arc<dyn studies::StudyState>,
                None => Arc::new(studies::MemoryStudies::default()),
            },
            handoff: handoff.clone(),
            backlog: backlog.clone(),
            evidence: state.inspect.evidence.clone(),
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
        let (scp_tx, scp_rx) = watch::channel(Arc::new(topology.scp.clone()));
        let (stale_lease_tx, stale_lease) = watch::channel(topology.stale_lease);
        let mut live = Live {
            inspect: state.inspect.clone(),
            processing: processing.clone(),
            scp: scp_tx,
            min_free_bytes: Arc::new(AtomicU64::new(topology.min_free_bytes)),
            max_unprocessed: Arc::new(AtomicUsize::new(topology.max_unprocessed)),
            stale_lease: stale_lease_tx,
            audit: state.audit.clone(),
            workers: ForwardWorkers {
                senders: HashMap::new(),
                running: HashMap::new(),
                gates: HashMap::new(),
                queue: queue.clone(),
                spool: spool.clone(),
                batch_size: cfg.queue.batch_size,
                wake_forward: wake_forward.clone(),
                wake_purge: wake_purge.clone(),
                stop: stop_rx.clone(),
                audit: state.audit.clone(),
            },
        };
        if let Some(c) = &state.cluster {
            tasks.spawn(c.heartbeat(stop_rx.clone()));
        }
        {
            let (queue, wake, stop) = (queue.clone(), wake_forward.clone(), stop_rx.clone());
            let start = move || {
                watchdog::run(
                    queue.clone(),
                    stale_lease.clone(),
                    wake.clone(),
                    stop.clone(),
                )
            };
            tasks.spawn(watchdog::supervise("watchdog", stop_rx.clone(), start));
        }
        // The same path as a reload: this starts the forward workers.
        live.apply(topology, &mut tasks);
        {
            let retention = radroute_queue::Retention {
                finished: Duration::from_secs(cfg.spool.retention_secs),
                dead_letters: Duration::from_secs(cfg.spool.dead_letter_retention_secs),
            };
            let (queue, spool, wake, stop) = (
                queue.clone(),
                spool.clone(),
                wake_purge.clone(),
                stop_rx.clone(),
            );
            let start = move || {
                purge::run(
                    queue.clone(),
                    spool.clone(),
                    retention,
                    wake.clone(),
                    stop.clone(),
                )
            };
            tasks.spawn(watchdog::supervise("purge", stop_rx.clone(), start));
        }

        let listener = tokio::net::TcpListener::bind(&cfg.node.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: cfg.node.listen.clone(),
                source,
            })?;
        let handler = Arc::new(store::SpoolingHandler {
            audit: state.audit.clone(),
            spool: spool.clone(),
            queue: queue.clone(),
            // Cluster mode: the bytes and the queue row in one transaction.
            ingest: state.cluster.as_ref().map(|c| {
                Arc::new(cluster::ClusterIngest {
                    store: c.store.clone(),
                    node_id: c.node_id.clone(),
                }) as Arc<dyn store::Ingest>
            }),
            wake_processing: wake_processing.clone(),
            min_free_bytes: live.min_free_bytes.clone(),
            handoff,
            backlog,
            max_unprocessed: live.max_unprocessed.clone(),
            max_inflated: cfg.node.max_instance_mb << 20,
            store_timeout: Duration::from_secs(cfg.node.store_timeout_secs),
        });
        let scp = radroute_receive::serve(listener, scp_rx, handler, shutdown);
        state.audit.application_started();
        if let Ok(destinations) = cfg.destinations() {
            tasks.spawn(reachability::probe_all(destinations));
        }
        let outcome = {
            let tasks = &mut tasks;
            let reload = async move {
                while let Some(cfg) = reloads.recv().await {
                    live.reload(&cfg, tasks);
                }
                // No more reloads (the binary could not install its SIGHUP handler): run on.
                std::future::pending::<()>().await
            };
            tokio::select! {
                result = scp => scp_exit::scp_outcome(result),
                _ = reload => Ok(()),
            }
        };
        info!("stopping workers");
        if let Some(c) = &state.cluster {
            c.draining().await;
        }
        let _ = stop_tx.send(true);
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            warn!("workers did not stop within 30 s");
        }
        if let Some(c) = &state.cluster {
            c.leave().await;
        }
        state
            .audit
            .application_stopped(Duration::from_secs(2))
            .await;
        info!("radroute stopped");
        outcome
    }
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
    /// The association limit each destination's workers share (forward_gate.rs).
    gates: HashMap<String, Arc<forward_gate::Gate>>,
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<dyn InstanceStore>,
    batch_size: usize,
    wake_forward: Arc<Notify>,
    wake_purge: Arc<Notify>,
    stop: watch::Receiver<bool>,
    audit: Arc<radroute_audit::Audit>,
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
        self.gates.retain(|name, _| names.contains(name));
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
        let gate = self
            .gates
            .entry(dest.name.clone())
            .or_insert_with(|| forward_gate::Gate::new(&dest.name, dest.associations))
            .clone();
        gate.set_max(dest.associations);
        let running = self.running.entry(dest.name.clone()).or_insert(0);
        for slot in *running..dest.associations {
            let gate = gate.clone();
            // A worker that panics is started again (its leases are released by the watchdog).
            let (dest_rx, queue, spool) = (tx.subscribe(), self.queue.clone(), self.spool.clone());
            let (wake, wake_purge, stop) = (
                self.wake_forward.clone(),
                self.wake_purge.clone(),
                self.stop.clone(),
            );
            let batch_size = self.batch_size;
            let audit = self.audit.clone();
            let start = move || {
                forwarder::run(
                    slot,
                    dest_rx.clone(),
                    gate.clone(),
                    queue.clone(),
                    spool.clone(),
                    batch_size,
                    wake.clone(),
                    wake_purge.clone(),
                    stop.clone(),
                    audit.clone(),
                )
            };
            tasks.spawn(watchdog::supervise("forward", self.stop.clone(), start));
        }
        *running = dest.associations;
    }
}

/// A reload (SIGHUP) as an operator action: the signal is all radroute knows of who sent it.
fn reload_action(outcome: Result<String, String>) -> radroute_audit::OperatorAction {
    radroute_audit::OperatorAction::now(
        "SIGHUP",
        None,
        radroute_audit::OperatorActionKind::ReloadRules,
        "rules",
        outcome,
    )
}

/// The live settings of a running node that a [`Topology`] sets, at start-up and on reload.
struct Live {
    /// What the console shows of the applied settings.
    inspect: Arc<inspect::Inspect>,
    processing: Arc<process::Processing>,
    scp: watch::Sender<Arc<radroute_receive::ScpOptions>>,
    min_free_bytes: Arc<AtomicU64>,
    max_unprocessed: Arc<AtomicUsize>,
    /// The watchdog's stale-lease bound (depends on the destinations' timeouts).
    stale_lease: watch::Sender<Duration>,
    workers: ForwardWorkers,
    /// Records reloads as operator actions.
    audit: Arc<radroute_audit::Audit>,
}

impl Live {
    /// Makes the running node match `topology` (associations in flight are not touched).
    fn apply(&mut self, topology: Topology, tasks: &mut JoinSet<()>) {
        self.inspect.set(&topology);
        *self
            .processing
            .rules
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(topology.rules);
        self.scp.send_replace(Arc::new(topology.scp));
        self.min_free_bytes
            .store(topology.min_free_bytes, Ordering::Relaxed);
        self.max_unprocessed
            .store(topology.max_unprocessed, Ordering::Relaxed);
        self.stale_lease.send_replace(topology.stale_lease);
        self.workers.apply(topology.destinations, tasks);
    }

    /// Applies a reloaded configuration, or refuses it with a log line and keeps the running
    /// one.
    fn reload(&mut self, cfg: &Config, tasks: &mut JoinSet<()>) {
        let topology = match Topology::from_config(cfg) {
            Ok(topology) => topology,
            Err(e) => {
                warn!(error = %e, "configuration reload refused; keeping the running configuration");
                self.audit
                    .record(reload_action(Err(format!("refused: {e}"))));
                return;
            }
        };
        self.apply(topology, tasks);
        self.audit.record(reload_action(Ok(format!(
            "{} destinations, {} routes",
            cfg.destinations.len(),
            cfg.routes.len()
        ))));
        metrics::counter!(telemetry::CONFIG_RELOADS).increment(1);
        info!(
            destinations = cfg.destinations.len(),
            routes = cfg.routes.len(),
            "configuration reloaded"
        );
    }
}

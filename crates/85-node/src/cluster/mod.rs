//! Cluster mode (`[cluster]`, docs/cluster.md): several nodes behind a TCP load balancer share
//! one PostgreSQL database that holds every durable thing (instance bytes, instance rows, the
//! forward queue, heartbeats). Any node can finish any job; a node that stops heartbeating has
//! its leases and received instances taken over by the others.
//!
//! This module is the wiring only; the backends are radroute-queue-pg (queue, leases,
//! takeover SQL) and radroute-store-postgres (instance bytes). Here: one connection pool per
//! process built from `[cluster]`, the migrations at start ([`migrate`], also `radroute
//! migrate`), this node's heartbeat ([`heartbeat`]), the drain on stop ([`drain`]) and the
//! operator's view of the cluster ([`status`]).

mod drain;
mod heartbeat;
mod ingest;
mod status;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use radroute_config::cluster::ClusterConfig;
use radroute_config::Config;
use radroute_queue::{ForwardQueue, UnixMillis};
use radroute_queue_pg::{PasswordSource, PgConfig, PgQueueOptions, PostgresQueue};
use radroute_store_postgres::{PgStore, PgStoreOptions};

pub(crate) use ingest::ClusterIngest;
use tracing::{info, warn};

pub use status::{read as read_status, ClusterStatus, NodeRow};

use crate::NodeError;

/// The live cluster wiring of a node: its id, the shared pool, and the PostgreSQL backends.
pub struct Cluster {
    /// This node's id (owner of its leases, `received_by` of its instances).
    pub node_id: String,
    /// The one pool of this process (queue, store, heartbeats, status).
    pub pool: Pool,
    /// The forward queue (leases, takeover).
    pub queue: Arc<PostgresQueue>,
    /// Instance bytes.
    pub store: Arc<PgStore>,
    /// Study-scope routing state (held instances, study leases).
    pub studies: Arc<crate::studies::PgStudies>,
    /// `[cluster] heartbeat_secs`.
    pub heartbeat_every: Duration,
    /// `[cluster] takeover_after_secs`.
    pub takeover_after: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The driver settings of `[cluster]` (password source, pool size, TLS with the CA of
/// `ca_file`); the password is read when the pool connects, never logged. Fails when the TLS
/// files cannot be read.
pub fn pg_config(cfg: &Config, cluster: &ClusterConfig) -> Result<PgConfig, NodeError> {
    let mut pg = PgConfig::new(cluster.postgres.trim());
    pg.tls = cluster.tls_config(cfg).map_err(NodeError::Config)?;
    pg.password = match (&cluster.password_env, &cluster.password_file) {
        (Some(var), _) => PasswordSource::Env(var.clone()),
        (None, Some(file)) => PasswordSource::File(file.clone()),
        (None, None) => PasswordSource::None,
    };
    pg.pool_size = cluster.pool_size;
    Ok(pg)
}

/// The queue settings of this node in the cluster (its id, the retry policy, the takeover
/// time): one place for the node's start-up and the operator commands.
pub fn queue_options(cfg: &Config, cluster: &ClusterConfig) -> PgQueueOptions {
    let mut options = PgQueueOptions::new(cluster.node_id());
    options.policy = cfg.retry_policy();
    options.takeover_after = Duration::from_secs(cluster.takeover_after_secs);
    options
}

fn db_err(cluster: &ClusterConfig, e: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("cluster database {}: {e}", cluster.redacted_url()))
}

/// Applies every component's migrations (queue, instance storage, then cluster state), each
/// under its own advisory lock so nodes starting together do not race. Idempotent: `radroute
/// migrate` and every node's start-up call it.
pub async fn migrate(cluster: &ClusterConfig, pool: &Pool) -> Result<(), NodeError> {
    radroute_queue_pg::migrate(pool, &cluster.redacted_url())
        .await
        .map_err(|e| db_err(cluster, e))?;
    radroute_store_postgres::migrate(pool)
        .await
        .map_err(|e| db_err(cluster, e))?;
    // Cluster state last: its study members reference the queue's instances.
    crate::studies::migrate(pool)
        .await
        .map_err(|e| db_err(cluster, e))?;
    Ok(())
}

/// Connects (bounded: PostgreSQL unreachable fails start-up with a clear error), migrates,
/// and builds the queue and the store of cluster mode. The local `[spool] dir` holds only
/// scratch copies (`<dir>/scratch`).
pub async fn open(cfg: &Config, cluster: &ClusterConfig) -> Result<Cluster, NodeError> {
    let pg = pg_config(cfg, cluster)?;
    let pool = pg.pool().map_err(|e| db_err(cluster, e))?;
    migrate(cluster, &pool).await?;
    let node_id = cluster.node_id();
    let options = queue_options(cfg, cluster);
    let handle = tokio::runtime::Handle::current();
    let queue = {
        let (pool, handle, pg) = (pool.clone(), handle.clone(), pg.clone());
        // PostgresQueue::new blocks on its runtime (migrations): never on an async thread.
        tokio::task::spawn_blocking(move || PostgresQueue::new(pool, handle, &pg, options))
            .await
            .map_err(|e| db_err(cluster, e))?
            .map_err(|e| db_err(cluster, e))?
    };
    let studies = crate::studies::PgStudies::new(
        pool.clone(),
        handle.clone(),
        crate::studies::PgStudiesOptions {
            node_id: node_id.clone(),
            takeover_after: Duration::from_secs(cluster.takeover_after_secs),
            lease_ttl: Duration::from_secs(600),
            call_timeout: pg.call_timeout(),
        },
    );
    let store = PgStore::new(
        pool.clone(),
        handle,
        PgStoreOptions::new(cfg.spool.dir.join("scratch")),
    )
    .map_err(|e| db_err(cluster, e))?;
    tokio::time::timeout(Duration::from_secs(10), drain::join(&pool, &node_id))
        .await
        .map_err(|_| db_err(cluster, "no answer within 10 s"))?
        .map_err(|e| db_err(cluster, e))?;
    info!(
        node_id = %node_id,
        database = %cluster.redacted_url(),
        takeover_after_secs = cluster.takeover_after_secs,
        "cluster mode: state in PostgreSQL"
    );
    Ok(Cluster {
        node_id,
        pool,
        queue: Arc::new(queue),
        store: Arc::new(store),
        studies: Arc::new(studies),
        heartbeat_every: Duration::from_secs(cluster.heartbeat_secs),
        takeover_after: Duration::from_secs(cluster.takeover_after_secs),
    })
}

/// Start-up recovery in cluster mode: this node's leases from its previous run go back to the
/// queue. The spool-against-queue reconciliation of a single node (recover.rs) does not run:
/// peers write and purge while this node starts, and in PostgreSQL the bytes and the instance
/// row commit in one transaction, so there is nothing to reconcile; received instances of dead
/// nodes are taken over by `pending_processing`.
pub(crate) fn recover(queue: &dyn ForwardQueue) {
    match queue.recover(UnixMillis::now()) {
        Ok(report) => info!(
            requeued_jobs = report.requeued_jobs,
            unprocessed_instances = report.received_instances,
            "cluster: own leases of the previous run requeued"
        ),
        Err(e) => warn!(error = %e, "cluster: queue recovery failed (the takeover requeues them)"),
    }
}

impl Cluster {
    /// The nodes, their heartbeats and leases, and the queue depth.
    pub async fn status(&self) -> Result<ClusterStatus, String> {
        status::read(&self.pool, &self.node_id, self.takeover_after).await
    }

    /// Writes heartbeats until `stop` turns true (see [`heartbeat::run`]).
    pub fn heartbeat(
        self: &Arc<Self>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        heartbeat::run(self.clone(), stop)
    }

    /// Marks this node draining: other nodes stop counting on it while it finishes.
    pub async fn draining(&self) {
        drain::set_state(&self.pool, &self.node_id, "draining").await;
    }

    /// After the workers stopped: hands this node's leases back and marks it left, so other
    /// nodes send its jobs and process its received instances at once (no takeover wait).
    pub async fn leave(&self) {
        drain::leave(self).await;
    }
}

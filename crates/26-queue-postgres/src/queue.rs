//! [`PostgresQueue`]: the [`ForwardQueue`] trait on PostgreSQL, bridging its synchronous calls
//! to the async driver.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use radroute_queue::{
    Counts, ForwardQueue, InstanceDetail, InstanceRecord, InstanceState, Job, JobFilter, JobId,
    JobState, JobView, NewInstance, Outcome, QueueError, RecoveryReport, Result, Retention,
    RetryPolicy, UnixMillis,
};
use tokio::runtime::{Handle, Runtime};

use crate::pipeline::{self, Ctx};
use crate::{admin, errors, migrate, PgConfig};

/// `call!(self, op, |c| future)`: runs `future` (which borrows `c: &mut Object`, a pooled
/// connection) on the pool's runtime within the call timeout; see [`Conn`] for what happens to
/// the connection afterwards.
macro_rules! call {
    ($self:ident, $op:expr, |$c:ident| $body:expr) => {{
        let op: &'static str = $op;
        $self.run(op, async {
            let mut conn = Conn::get(&$self.pool, op).await?;
            let result = {
                let $c = conn.object();
                $body.await
            };
            conn.finish(result)
        })
    }};
}

/// This node's identity and lease timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgQueueOptions {
    /// This node's id: the owner of its leases and the `received_by` of its instances. Unique
    /// in the cluster and stable across restarts (the host name by default).
    pub node_id: String,
    /// Retry policy of failed deliveries.
    pub policy: RetryPolicy,
    /// How long a lease lasts unless renewed ([`PostgresQueue::renew`]). A backstop: a live
    /// node's leases are normally released by itself, a dead node's by the takeover.
    pub lease_ttl: Duration,
    /// A node whose heartbeat is older than this is dead: its leases and received instances
    /// are taken over.
    pub takeover_after: Duration,
}

impl PgQueueOptions {
    /// Options for `node_id` with the defaults: default retry policy, leases of 10 minutes,
    /// takeover after 30 s without a heartbeat.
    pub fn new(node_id: impl Into<String>) -> PgQueueOptions {
        PgQueueOptions {
            node_id: node_id.into(),
            policy: RetryPolicy::default(),
            lease_ttl: Duration::from_secs(600),
            takeover_after: Duration::from_secs(30),
        }
    }
}

/// The forward queue on PostgreSQL, shared by every node of a cluster.
///
/// Each synchronous call runs its async statements with `Handle::block_on` on the runtime that
/// drives the pool's connections, bounded by the call timeout. Call it from blocking threads
/// (`spawn_blocking`, plain threads), as every caller of [`ForwardQueue`] does; from async code
/// use the pool with the crate's async functions instead.
pub struct PostgresQueue {
    pool: Pool,
    handle: Handle,
    /// The runtime [`PostgresQueue::connect`] created (none when the caller gave a handle).
    runtime: Option<Runtime>,
    ctx: Ctx,
    call_timeout: Duration,
    database: String,
    /// Token of the next lease call (unique within this process).
    lease_tokens: AtomicI64,
    /// Tokens of lease calls that failed on this side: they may have committed, and their jobs
    /// are requeued by the next lease call that reaches the database.
    failed_leases: Mutex<Vec<i64>>,
    /// Outcomes that could not be recorded (database unreachable): recorded by the next lease
    /// call that reaches the database, so a job that was never sent is not left in flight.
    unrecorded: Mutex<Vec<(JobId, Outcome)>>,
}

impl std::fmt::Debug for PostgresQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresQueue")
            .field("database", &self.database)
            .field("node_id", &self.ctx.node)
            .finish_non_exhaustive()
    }
}

impl PostgresQueue {
    /// Connects with its own small runtime and pool, and applies the migrations: for the CLI
    /// and tests. Fails with `Unavailable` when PostgreSQL cannot be reached in time.
    pub fn connect(config: &PgConfig, options: PgQueueOptions) -> Result<PostgresQueue> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("radroute-pg")
            .enable_all()
            .build()
            .map_err(|e| radroute_queue::QueueError::Backend {
                op: "start database runtime",
                source: Box::new(e),
            })?;
        let pool = {
            let _enter = runtime.enter();
            config.pool()?
        };
        let mut queue = PostgresQueue::new(pool, runtime.handle().clone(), config, options)?;
        queue.runtime = Some(runtime);
        Ok(queue)
    }

    /// A queue on an existing pool whose connections `handle`'s runtime drives (the node's
    /// pool, shared with instance storage). Applies the migrations. Like every call of this
    /// type, call it from a blocking context (`spawn_blocking`, a plain thread): it waits
    /// with `Handle::block_on`.
    pub fn new(
        pool: Pool,
        handle: Handle,
        config: &PgConfig,
        options: PgQueueOptions,
    ) -> Result<PostgresQueue> {
        let queue = PostgresQueue {
            pool,
            handle,
            runtime: None,
            ctx: Ctx {
                node: options.node_id,
                policy: options.policy,
                lease_ttl_ms: millis(options.lease_ttl),
                takeover_after_ms: millis(options.takeover_after),
            },
            call_timeout: config.call_timeout(),
            database: config.redacted_url(),
            lease_tokens: AtomicI64::new(UnixMillis::now().0.saturating_mul(1000)),
            failed_leases: Mutex::new(Vec::new()),
            unrecorded: Mutex::new(Vec::new()),
        };
        let database = queue.database.clone();
        // Migrations may wait for another node's migration lock: not bounded by call_timeout.
        queue
            .handle
            .block_on(migrate::migrate(&queue.pool, &database))?;
        Ok(queue)
    }

    /// The pool (shared with instance storage and the cluster wiring).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.ctx.node
    }

    /// The database, without password.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Records this node's heartbeat at `now` (row created on first call). The cluster wiring
    /// calls it every few seconds; a node silent for `takeover_after` is dead to the others.
    pub fn heartbeat(&self, now: UnixMillis) -> Result<()> {
        call!(self, "heartbeat", |c| pipeline::heartbeat(
            c, &self.ctx, now
        ))
    }

    /// Extends this node's leases on `job_ids` to `now + lease_ttl` (a long send); returns how
    /// many of them it still holds (fewer: a lease was lost, the send may be a duplicate).
    pub fn renew(&self, job_ids: &[JobId], now: UnixMillis) -> Result<u64> {
        call!(self, "renew leases", |c| pipeline::renew(
            c, &self.ctx, job_ids, now
        ))
    }

    /// Hands every lease of this node back (queued, due now, attempt not counted): a draining
    /// node calls it after its workers stopped, so other nodes send at once.
    pub fn hand_back(&self, now: UnixMillis) -> Result<u64> {
        call!(self, "hand back leases", |c| pipeline::release_own(
            c, &self.ctx, now
        ))
    }

    /// In-flight jobs per lease owner (node id).
    pub fn leases_by_node(&self) -> Result<BTreeMap<String, u64>> {
        call!(self, "leases by node", |c| admin::leases_by_node(c))
    }

    /// Records the outcomes that [`ForwardQueue::complete`] could not (database unreachable): a
    /// retry of a job never sent would otherwise stay in flight until the stale-lease limit. An
    /// outcome the database meanwhile refuses (the lease was taken over, or the first call did
    /// commit) is dropped; one that still cannot reach it is kept for the next call.
    fn record_unrecorded(&self, now: UnixMillis) {
        let pending: Vec<(JobId, Outcome)> =
            std::mem::take(&mut *self.unrecorded.lock().unwrap_or_else(|e| e.into_inner()));
        let mut keep = Vec::new();
        for (job_id, outcome) in pending {
            if !keep.is_empty() {
                keep.push((job_id, outcome));
                continue;
            }
            match call!(self, "complete", |c| pipeline::complete(
                c, &self.ctx, job_id, &outcome, now
            )) {
                Ok(state) => tracing::info!(
                    job = job_id,
                    ?state,
                    "outcome recorded after the database came back"
                ),
                Err(e) if e.is_unavailable() => keep.push((job_id, outcome)),
                Err(e) => tracing::info!(job = job_id, error = %e, "late outcome not recorded"),
            }
        }
        self.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(keep);
    }

    /// Requeues the jobs of lease calls that failed on this side (a lease that committed while
    /// the connection broke would otherwise stay in flight until the stale-lease limit); kept for
    /// the next call while the database does not answer.
    fn release_failed_leases(&self, now: UnixMillis) {
        let tokens: Vec<i64> = self
            .failed_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if tokens.is_empty() {
            return;
        }
        let released = call!(self, "release leases of failed calls", |c| {
            pipeline::release_tokens(c, &self.ctx, &tokens, now)
        });
        if let Ok(n) = released {
            self.failed_leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|t| !tokens.contains(t));
            if n > 0 {
                tracing::warn!(
                    jobs = n,
                    "requeued jobs leased by a call whose answer was lost (database connection broke)"
                );
            }
        }
    }

    /// Runs `work` on the pool's runtime, within the call timeout.
    fn run<T>(&self, op: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.call_timeout;
        self.handle.block_on(async move {
            match tokio::time::timeout(limit, work).await {
                Ok(r) => r,
                Err(_) => Err(errors::timed_out(op, limit)),
            }
        })
    }
}

impl Drop for PostgresQueue {
    fn drop(&mut self) {
        // Never blocks (dropping a runtime from async code would panic).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A pooled connection for one call. Dropped without [`Conn::finish`] (the call timed out and
/// its future was dropped mid-statement) or finished with `Unavailable`, it is discarded
/// instead of going back to the pool: its state is unknown.
struct Conn {
    obj: Option<Object>,
}

impl Conn {
    async fn get(pool: &Pool, op: &'static str) -> Result<Conn> {
        let obj = pool.get().await.map_err(|e| errors::pool(op, e))?;
        Ok(Conn { obj: Some(obj) })
    }

    fn object(&mut self) -> &mut Object {
        self.obj
            .as_mut()
            .expect("connection present until finish or drop")
    }

    /// Returns the connection to the pool unless `result` says the connection is broken.
    fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        let broken = matches!(&result, Err(e) if e.is_unavailable());
        if !broken {
            drop(self.obj.take());
        }
        result
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            // Detached from the pool: dropping it closes the connection.
            drop(Object::take(obj));
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ForwardQueue for PostgresQueue {
    fn add_instance(&self, instance: &NewInstance) -> Result<()> {
        call!(self, "add instance", |c| pipeline::insert_instance(
            // the pooled object, its wrapper, the tokio-postgres client
            &***c,
            instance,
            &self.ctx.node
        ))
    }

    fn pending_processing(&self, limit: usize) -> Result<Vec<InstanceRecord>> {
        let now = UnixMillis::now();
        call!(self, "list pending instances", |c| {
            pipeline::pending_processing(c, &self.ctx, limit, now)
        })
    }

    fn route_instance_with_priority(
        &self,
        id: &str,
        label: Option<&str>,
        note: Option<&str>,
        destinations: &[String],
        priority: i8,
        now: UnixMillis,
    ) -> Result<()> {
        call!(self, "route instance", |c| pipeline::route_instance(
            c,
            id,
            label,
            note,
            destinations,
            priority,
            now
        ))
    }

    fn lease(&self, destination: &str, max: usize, now: UnixMillis) -> Result<Vec<Job>> {
        self.record_unrecorded(now);
        self.release_failed_leases(now);
        let token = self.lease_tokens.fetch_add(1, Ordering::Relaxed);
        let leased = call!(self, "lease", |c| pipeline::lease(
            c,
            &self.ctx,
            destination,
            max,
            now,
            token
        ));
        if leased.is_err() {
            self.failed_leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(token);
        }
        leased
    }

    fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>> {
        call!(self, "next due", |c| pipeline::next_due(c, destination))
    }

    fn complete(&self, job_id: JobId, outcome: &Outcome, now: UnixMillis) -> Result<JobState> {
        let recorded = call!(self, "complete", |c| pipeline::complete(
            c, &self.ctx, job_id, outcome, now
        ));
        if recorded.as_ref().is_err_and(QueueError::is_unavailable) {
            self.unrecorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((job_id, outcome.clone()));
        }
        recorded
    }

    fn recover(&self, now: UnixMillis) -> Result<RecoveryReport> {
        call!(self, "recover", |c| pipeline::recover(c, &self.ctx, now))
    }

    fn release_stale(&self, leased_before: UnixMillis, now: UnixMillis) -> Result<u64> {
        call!(self, "release stale leases", |c| pipeline::release_stale(
            c,
            &self.ctx,
            leased_before,
            now
        ))
    }

    fn purgeable(
        &self,
        now: UnixMillis,
        retention: Retention,
        limit: usize,
    ) -> Result<Vec<String>> {
        call!(self, "list purgeable", |c| pipeline::purgeable(
            c,
            now.saturating_sub(retention.finished),
            now.saturating_sub(retention.dead_letters),
            limit
        ))
    }

    fn mark_done(&self, id: &str, now: UnixMillis) -> Result<()> {
        call!(self, "mark done", |c| pipeline::mark_done(c, id, now))
    }

    fn open_instances(&self) -> Result<Vec<(String, InstanceState)>> {
        call!(self, "list open instances", |c| pipeline::open_instances(c))
    }

    fn fail_jobs(&self, id: &str, error: &str, now: UnixMillis) -> Result<usize> {
        call!(self, "fail jobs", |c| pipeline::fail_jobs(
            c, id, error, now
        ))
    }

    fn counts(&self) -> Result<Counts> {
        call!(self, "counts", |c| admin::counts(c))
    }

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>> {
        call!(self, "list jobs", |c| admin::list_jobs(c, filter))
    }

    fn retry_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        call!(self, "retry", |c| admin::retry_job(c, job_id, now))
    }

    fn retry_dead(&self, destination: Option<&str>, now: UnixMillis) -> Result<usize> {
        call!(self, "retry dead", |c| admin::retry_dead(
            c,
            destination,
            now
        ))
    }

    fn drop_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        call!(self, "drop", |c| admin::drop_job(c, job_id, now))
    }

    fn instance(&self, id: &str) -> Result<Option<InstanceDetail>> {
        call!(self, "instance", |c| admin::instance(c, id))
    }

    fn study(&self, study_instance_uid: &str) -> Result<Vec<InstanceDetail>> {
        call!(self, "study", |c| admin::study(c, study_instance_uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radroute_queue::NewInstance;
    use radroute_testkit::postgres::PgServer;

    /// A queue with one instance routed to `pacs`.
    fn queue_with_one_job() -> (PostgresQueue, UnixMillis) {
        let url = PgServer::shared().new_database();
        let q =
            PostgresQueue::connect(&PgConfig::new(url), PgQueueOptions::new("n1")).expect("queue");
        let now = UnixMillis::now();
        q.add_instance(&NewInstance {
            id: "i1".into(),
            sop_instance_uid: "1.2.3.1".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: None,
            calling_ae: "MODALITY".into(),
            called_ae: "RADROUTE".into(),
            peer_addr: "127.0.0.1:4000".into(),
            received_at: now,
            bytes: 10,
        })
        .expect("add");
        q.route_instance("i1", None, None, &["pacs".to_string()], now)
            .expect("route");
        (q, now)
    }

    #[test]
    fn an_outcome_the_database_did_not_take_is_recorded_by_the_next_lease() {
        let (q, now) = queue_with_one_job();
        let job = q.lease("pacs", 10, now).expect("lease").remove(0);
        // The bytes could not be read and `complete` found the database gone: the job, never
        // sent, would stay in flight until the stale-lease limit.
        q.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                job.id,
                Outcome::Retry {
                    error: "instance bytes unavailable".into(),
                    status: None,
                },
            ));
        q.lease("pacs", 10, now).expect("lease");
        let detail = q.instance("i1").expect("read").expect("instance");
        assert_eq!(detail.jobs[0].state, JobState::Queued, "{detail:?}");
        assert_eq!(detail.jobs[0].attempts, 1);
        assert!(q
            .unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty());
    }

    #[test]
    fn jobs_of_a_lease_call_that_failed_on_this_side_are_requeued_by_the_next_lease() {
        let (q, now) = queue_with_one_job();
        // A lease call that committed in the database while its answer was lost (connection
        // broken): the job is in flight, owned by this node, and nobody here knows it.
        let token = q.lease_tokens.fetch_add(1, Ordering::Relaxed);
        let lost = call!(q, "lease", |c| pipeline::lease(
            c, &q.ctx, "pacs", 10, now, token
        ))
        .expect("lease commits");
        assert_eq!(lost.len(), 1);
        q.failed_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
        // The next lease requeues it first and gets it, instead of leaving it in flight until
        // the watchdog's stale-lease limit.
        let again = q.lease("pacs", 10, now).expect("lease");
        assert_eq!(again.len(), 1, "the lost lease's job is leased again");
        assert!(q
            .failed_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty());
    }
}

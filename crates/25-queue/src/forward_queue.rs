//! The [`ForwardQueue`] trait: the contract between the daemon and a queue backend.
//!
//! # State machine
//!
//! | from | call | to |
//! |---|---|---|
//! | — | `add_instance` | instance `received` |
//! | instance `received` | `route_instance(dests ≠ ∅)` | instance `routed`, one job `queued` per destination, due now |
//! | instance `received` | `route_instance(∅)` (a drop route, no matching route) | instance `routed` with no job (note kept): purgeable after `Retention::finished` |
//! | job `queued`, due | `lease` | `in_flight` |
//! | job `in_flight` | `complete(Delivered)` | `delivered` (attempts + 1) |
//! | job `in_flight` | `complete(Retry)` | `queued`, due `now + backoff(attempts)` (attempts + 1); `dead` when attempts reach `max_attempts` |
//! | job `in_flight` | `complete(Dead)` | `dead` (attempts + 1) |
//! | job `in_flight` | `recover` (start-up), `release_stale` (lease too old) | `queued`, due now, attempts unchanged |
//! | job `dead` or `queued`, instance not `done` | `retry_job`, `retry_dead` | `queued`, due now, attempts reset to 0 |
//! | job `dead`, instance `done` | `retry_job` | refused: `FilesPurged` (`retry_dead` skips it) |
//! | job not `delivered` | `drop_job` | `dead`, `last_error = "dropped by operator"` |
//! | job `queued` or `in_flight` | `fail_jobs` (its spool file is missing) | `dead` with the reason, attempts unchanged |
//! | instance `routed`, no job `queued`/`in_flight`, delivered and operator-dropped jobs (or the routing itself, with no job) older than `Retention::finished`, other dead jobs older than `Retention::dead_letters` | `purgeable` lists it; daemon calls `mark_done`, then removes the files | `done` |
//!
//! `done` therefore always means "its files are purged (or being purged)": the daemon marks an
//! instance done *before* it removes the files, so an operator retry that races the purge is
//! refused instead of queueing a job with nothing to send; a crash between the two leaves files
//! of a `done` instance, which start-up recovery removes.

//! # Durability
//!
//! Every mutating method commits before it returns; the SQLite backend runs with
//! `synchronous=FULL`, so a returned `Ok` survives power loss. The daemon acknowledges a
//! C-STORE only after `add_instance` returned `Ok`.
//!
//! # Crash recovery
//!
//! [`ForwardQueue::recover`] must run once at start-up, before any worker leases: jobs found
//! `in_flight` were interrupted (the destination may or may not have stored the instance; a
//! second C-STORE of the same SOP Instance UID is harmless for a PACS) and are queued again
//! **without counting the interrupted attempt**: a restart is not the destination's fault, and
//! an operator restarting the daemon must not push jobs towards the dead letter. Instances
//! still `received` are reported so the daemon re-processes them (`pending_processing`).

use crate::{
    Counts, InstanceDetail, InstanceRecord, InstanceState, Job, JobFilter, JobId, JobState,
    JobView, NewInstance, Outcome, RecoveryReport, Result, Retention, UnixMillis,
};

/// A durable forward queue backend. Object safe: the daemon holds an `Arc<dyn ForwardQueue>`
/// and calls it from blocking threads.
pub trait ForwardQueue: Send + Sync {
    /// Records a received instance (state `received`), durably, before the C-STORE is
    /// acknowledged. Fails with `DuplicateInstance` if the id exists.
    fn add_instance(&self, instance: &NewInstance) -> Result<()>;

    /// Up to `limit` instances awaiting processing, oldest first.
    fn pending_processing(&self, limit: usize) -> Result<Vec<InstanceRecord>>;

    /// Records the processing result of a `received` instance in one transaction: label and
    /// note, one `queued` job per distinct destination (due `now`), state `routed`. With no
    /// destination it is `routed` with no job, keeps its note, and is purged after
    /// `Retention::finished` like a delivered instance.
    ///
    /// Jobs get the medium priority; see [`ForwardQueue::route_instance_with_priority`].
    fn route_instance(
        &self,
        id: &str,
        label: Option<&str>,
        note: Option<&str>,
        destinations: &[String],
        now: UnixMillis,
    ) -> Result<()> {
        self.route_instance_with_priority(id, label, note, destinations, 0, now)
    }

    /// [`ForwardQueue::route_instance`] with a job priority (a routing rule's action): higher
    /// values are leased first (-1 low, 0 medium, 1 high) and travel as the C-STORE priority.
    fn route_instance_with_priority(
        &self,
        id: &str,
        label: Option<&str>,
        note: Option<&str>,
        destinations: &[String],
        priority: i8,
        now: UnixMillis,
    ) -> Result<()>;

    /// Atomically leases up to `max` jobs of `destination` that are due at `now`, highest
    /// priority first, then oldest first, setting them `in_flight`. Two callers never get the same job.
    fn lease(&self, destination: &str, max: usize, now: UnixMillis) -> Result<Vec<Job>>;

    /// When the earliest `queued` job of `destination` is due, so a worker can sleep until
    /// then; `None` when it has no queued job.
    fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>>;

    /// Records the outcome of an attempt on an `in_flight` job and returns its new state
    /// (`Retry` may yield `Dead` when attempts are exhausted).
    fn complete(&self, job_id: JobId, outcome: &Outcome, now: UnixMillis) -> Result<JobState>;

    /// Start-up recovery: `in_flight` jobs back to `queued` (attempt not counted).
    fn recover(&self, now: UnixMillis) -> Result<RecoveryReport>;

    /// Watchdog for a running daemon: jobs leased before `leased_before` and still
    /// `in_flight` (their worker died or lost its completion) go back to `queued`, due `now`,
    /// attempt not counted. Returns how many. A slow worker whose job is released may deliver
    /// it twice; a duplicate C-STORE is harmless, a job stuck in flight is not.
    fn release_stale(&self, leased_before: UnixMillis, now: UnixMillis) -> Result<u64>;

    /// Up to `limit` `routed` instances, oldest first, whose spool files may be removed now:
    /// no job is `queued` or `in_flight`; every delivered or operator-dropped job finished (and,
    /// with no job at all, the instance was routed) at least `retention.finished` before `now`;
    /// every other dead job died at least `retention.dead_letters` before `now`. The daemon
    /// calls `mark_done` and then removes the files.
    fn purgeable(&self, now: UnixMillis, retention: Retention, limit: usize)
        -> Result<Vec<String>>;

    /// Marks a `routed` instance `done` because its files are about to be purged (idempotent
    /// on `done`). Refused while one of its jobs is `queued` or `in_flight`: the check and the
    /// update are one transaction, so an operator retry cannot slip in between.
    fn mark_done(&self, id: &str, now: UnixMillis) -> Result<()>;

    /// Instances that are not `done` (whose spool files should therefore exist), oldest first,
    /// with their state: start-up recovery compares them with the spool.
    fn open_instances(&self) -> Result<Vec<(String, InstanceState)>>;

    /// Every `queued` or `in_flight` job of instance `id` becomes `dead` with `error` (attempts
    /// unchanged), because what it would send is gone (its spool file is missing). Returns
    /// how many.
    fn fail_jobs(&self, id: &str, error: &str, now: UnixMillis) -> Result<usize>;

    /// Counts of instances and jobs by state, and jobs per destination.
    fn counts(&self) -> Result<Counts>;

    /// Jobs matching `filter`, newest first.
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>>;

    /// Operator retry of one `dead` (or `queued`) job: due now, attempts reset to 0. Refused
    /// with `FilesPurged` once its instance is `done` (files purged after the retention).
    fn retry_job(&self, job_id: JobId, now: UnixMillis) -> Result<()>;

    /// Operator retry of every dead job (of one destination, if given) whose instance still
    /// has its files (not `done`); returns how many.
    fn retry_dead(&self, destination: Option<&str>, now: UnixMillis) -> Result<usize>;

    /// Operator drop: the job becomes `dead` with error "dropped by operator": given up, so
    /// its instance's files are purged after `Retention::finished` (not the dead-letter
    /// retention) once no other job needs them. The row is kept for the audit trail and
    /// `retry_job` can revive it until then. Delivered jobs cannot be dropped.
    fn drop_job(&self, job_id: JobId, now: UnixMillis) -> Result<()>;

    /// One instance with its jobs.
    fn instance(&self, id: &str) -> Result<Option<InstanceDetail>>;

    /// All instances of a study with their jobs, by reception time.
    fn study(&self, study_instance_uid: &str) -> Result<Vec<InstanceDetail>>;
}

//! The [`ForwardQueue`] trait: the contract between the daemon and a queue backend.
//!
//! # State machine
//!
//! | from | call | to |
//! |---|---|---|
//! | — | `add_instance` | instance `received` |
//! | instance `received` | `route_instance(dests ≠ ∅)` | instance `routed`, one job `queued` per destination, due now |
//! | instance `received` | `route_instance(∅)` | instance `done` (row and note kept; no job, so never purgeable) |
//! | job `queued`, due | `lease` | `in_flight` |
//! | job `in_flight` | `complete(Delivered)` | `delivered` (attempts + 1) |
//! | job `in_flight` | `complete(Retry)` | `queued`, due `now + backoff(attempts)` (attempts + 1); `dead` when attempts reach `max_attempts` |
//! | job `in_flight` | `complete(Dead)` | `dead` (attempts + 1) |
//! | job `in_flight` | `recover` (start-up), `release_stale` (lease too old) | `queued`, due now, attempts unchanged |
//! | job `dead` or `queued` | `retry_job`, `retry_dead` | `queued`, due now, attempts reset to 0 |
//! | job not `delivered` | `drop_job` | `dead`, `last_error = "dropped by operator"` |
//! | instance `routed`, all jobs `delivered` | `purgeable` lists it, daemon removes files, `mark_done` | `done` |
//!
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

use std::time::Duration;

use crate::{
    Counts, InstanceDetail, InstanceRecord, Job, JobFilter, JobId, JobState, JobView, NewInstance,
    Outcome, RecoveryReport, Result, UnixMillis,
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
    /// note, one `queued` job per distinct destination (due `now`), state `routed`; with no
    /// destination the instance becomes `done` and keeps its note.
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

    /// Up to `limit` `routed` instances whose jobs are all delivered, the last delivery at
    /// least `retention` before `now`: their spool files may be removed, then `mark_done`.
    fn purgeable(&self, now: UnixMillis, retention: Duration, limit: usize) -> Result<Vec<String>>;

    /// Marks a `routed` instance `done` once its files are purged (idempotent on `done`).
    fn mark_done(&self, id: &str, now: UnixMillis) -> Result<()>;

    /// Counts of instances and jobs by state, and jobs per destination.
    fn counts(&self) -> Result<Counts>;

    /// Jobs matching `filter`, newest first.
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>>;

    /// Operator retry of one `dead` (or `queued`) job: due now, attempts reset to 0.
    fn retry_job(&self, job_id: JobId, now: UnixMillis) -> Result<()>;

    /// Operator retry of every dead job (of one destination, if given); returns how many.
    fn retry_dead(&self, destination: Option<&str>, now: UnixMillis) -> Result<usize>;

    /// Operator drop: the job becomes `dead` with error "dropped by operator". The row is
    /// kept for the audit trail and `retry_job` can revive it; its instance is never purged
    /// while it is dead. Delivered jobs cannot be dropped.
    fn drop_job(&self, job_id: JobId, now: UnixMillis) -> Result<()>;

    /// One instance with its jobs.
    fn instance(&self, id: &str) -> Result<Option<InstanceDetail>>;

    /// All instances of a study with their jobs, by reception time.
    fn study(&self, study_instance_uid: &str) -> Result<Vec<InstanceDetail>>;
}

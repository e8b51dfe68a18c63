//! The embedded SQLite backend of [`ForwardQueue`].
//!
//! # Files
//!
//! One database file (plus SQLite's `-wal` and `-shm` companions) given to
//! [`SqliteQueue::open`]. Schema: see [`schema`]. Timestamps are unix milliseconds (INTEGER),
//! states are TEXT.
//!
//! # Durability and concurrency
//!
//! `journal_mode=WAL` (readers do not block the writer), `synchronous=FULL` (a committed
//! transaction is fsynced before `COMMIT` returns, so it survives power loss), foreign keys on,
//! `busy_timeout` 5 s (another process, e.g. the `radroute queue` CLI, may hold the write lock
//! briefly). Writes use `BEGIN IMMEDIATE`, so a lease reads and updates under the write lock and
//! two leasers, even in two processes, never get the same job.
//!
//! The connection sits behind a `std::sync::Mutex`: every method is a short synchronous call
//! made from a blocking thread (never held across an `.await`), rusqlite's `Connection` is
//! `Send` but not `Sync`, and SQLite serialises writers anyway, so a pool would buy little. A
//! poisoned mutex is recovered: a panic inside a call drops its `Transaction`, which rolls back,
//! so the connection is consistent.
//!
//! The hot writes (`add_instance` from every association, `route_instance` from the
//! processing workers, `lease` and `complete` from the forward workers) go through a group
//! commit ([`group`]): writes that arrive while a commit is in progress share the next
//! transaction and its one fsync, and each caller returns only after that commit.
//! `synchronous=FULL` stays: with WAL, `NORMAL` would let a commit that was acknowledged be
//! lost on power failure (the WAL is fsynced only at checkpoints), which the daemon's promise
//! (acknowledge a C-STORE only once it is durable) forbids. Group commit buys the fsyncs back
//! instead.

mod admin;
mod group;
mod pipeline;
mod rows;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::{
    Counts, ForwardQueue, InstanceDetail, InstanceRecord, InstanceState, Job, JobFilter, JobId,
    JobState, JobView, NewInstance, Outcome, QueueError, RecoveryReport, Result, Retention,
    RetryPolicy, UnixMillis,
};

/// How long a call waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite queue. Share it as `Arc<SqliteQueue>` or `Arc<dyn ForwardQueue>`.
#[derive(Debug)]
pub struct SqliteQueue {
    conn: Mutex<Connection>,
    group: group::GroupCommit,
    policy: RetryPolicy,
    path: PathBuf,
}

impl SqliteQueue {
    /// Opens (creating if needed) the database at `path`, configures it and creates or migrates
    /// the schema.
    pub fn open(path: &Path, policy: RetryPolicy) -> Result<SqliteQueue> {
        let open_err = |source| QueueError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, WAL required"
            ))));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(open_err)?;
        schema::migrate(&mut conn, path)?;
        Ok(SqliteQueue {
            conn: Mutex::new(conn),
            group: group::GroupCommit::default(),
            policy,
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The retry policy given at open.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ForwardQueue for SqliteQueue {
    fn add_instance(&self, instance: &NewInstance) -> Result<()> {
        let instance = instance.clone();
        self.group
            .run(&self.conn, move |tx| pipeline::add_instance(tx, &instance))
    }

    fn pending_processing(&self, limit: usize) -> Result<Vec<InstanceRecord>> {
        pipeline::pending_processing(&self.conn(), limit)
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
        let (id, label, note) = (
            id.to_owned(),
            label.map(str::to_owned),
            note.map(str::to_owned),
        );
        let destinations = destinations.to_vec();
        self.group.run(&self.conn, move |tx| {
            pipeline::route_instance(
                tx,
                &id,
                label.as_deref(),
                note.as_deref(),
                &destinations,
                priority,
                now,
            )
        })
    }

    fn lease(&self, destination: &str, max: usize, now: UnixMillis) -> Result<Vec<Job>> {
        let destination = destination.to_owned();
        self.group.run(&self.conn, move |tx| {
            pipeline::lease(tx, &destination, max, now)
        })
    }

    fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>> {
        pipeline::next_due(&self.conn(), destination)
    }

    fn complete(&self, job_id: JobId, outcome: &Outcome, now: UnixMillis) -> Result<JobState> {
        let (policy, outcome) = (self.policy, outcome.clone());
        self.group.run(&self.conn, move |tx| {
            pipeline::complete(tx, &policy, job_id, &outcome, now)
        })
    }

    fn recover(&self, now: UnixMillis) -> Result<RecoveryReport> {
        pipeline::recover(&mut self.conn(), now)
    }

    fn release_stale(&self, leased_before: UnixMillis, now: UnixMillis) -> Result<u64> {
        pipeline::release_stale(&mut self.conn(), leased_before, now)
    }

    fn purgeable(
        &self,
        now: UnixMillis,
        retention: Retention,
        limit: usize,
    ) -> Result<Vec<String>> {
        pipeline::purgeable(
            &self.conn(),
            now.saturating_sub(retention.finished),
            now.saturating_sub(retention.dead_letters),
            limit,
        )
    }

    fn mark_done(&self, id: &str, now: UnixMillis) -> Result<()> {
        pipeline::mark_done(&mut self.conn(), id, now)
    }

    fn open_instances(&self) -> Result<Vec<(String, InstanceState)>> {
        pipeline::open_instances(&self.conn())
    }

    fn fail_jobs(&self, id: &str, error: &str, now: UnixMillis) -> Result<usize> {
        pipeline::fail_jobs(&mut self.conn(), id, error, now)
    }

    fn counts(&self) -> Result<Counts> {
        admin::counts(&self.conn())
    }

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>> {
        admin::list_jobs(&self.conn(), filter)
    }

    fn retry_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        admin::retry_job(&mut self.conn(), job_id, now)
    }

    fn retry_dead(&self, destination: Option<&str>, now: UnixMillis) -> Result<usize> {
        admin::retry_dead(&mut self.conn(), destination, now)
    }

    fn drop_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        admin::drop_job(&mut self.conn(), job_id, now)
    }

    fn instance(&self, id: &str) -> Result<Option<InstanceDetail>> {
        admin::instance(&self.conn(), id)
    }

    fn study(&self, study_instance_uid: &str) -> Result<Vec<InstanceDetail>> {
        admin::study(&self.conn(), study_instance_uid)
    }
}

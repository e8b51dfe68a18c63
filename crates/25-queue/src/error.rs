//! The crate's error type: every variant names the operation, job or instance concerned.

use std::path::PathBuf;

use crate::{InstanceState, JobId, JobState};

/// Result alias of this crate.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database file could not be opened or configured.
    #[error("queue: cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer radroute (schema `user_version` too high).
    #[error(
        "queue: database {path} has schema version {found}, this build supports up to {supported}"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A database operation failed.
    #[error("queue: {op}: {source}")]
    Database {
        /// The queue operation (`"lease"`, `"complete"`, ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// `add_instance` with an id that is already stored.
    #[error("queue: instance {id} already exists")]
    DuplicateInstance {
        /// The instance id.
        id: String,
    },
    /// No instance with this id.
    #[error("queue: no instance {id}")]
    UnknownInstance {
        /// The instance id.
        id: String,
    },
    /// No job with this id.
    #[error("queue: no job {job_id}")]
    UnknownJob {
        /// The job id.
        job_id: JobId,
    },
    /// The instance is not in a state that allows the operation.
    #[error("queue: cannot {op} instance {id} in state {state}")]
    InstanceState {
        /// The operation refused.
        op: &'static str,
        /// The instance id.
        id: String,
        /// Its current state.
        state: InstanceState,
    },
    /// A retry of a job whose instance's spool files were purged (state `done`): there is
    /// nothing left to send.
    #[error(
        "queue: job {job_id} cannot be retried: the files of instance {instance_id} were purged \
         (the dead letter is kept for the record only)"
    )]
    FilesPurged {
        /// The job.
        job_id: JobId,
        /// Its instance.
        instance_id: String,
    },
    /// The job is not in a state that allows the operation (e.g. completing a job that an
    /// operator dropped while it was in flight).
    #[error("queue: cannot {op} job {job_id} in state {state}")]
    JobState {
        /// The operation refused.
        op: &'static str,
        /// The job id.
        job_id: JobId,
        /// Its current state.
        state: JobState,
    },
    /// A database server's schema (PostgreSQL) was migrated by a newer radroute: this build
    /// does not know its latest migration and refuses to guess.
    #[error(
        "queue: database {database} has schema version {found}, this build supports up to \
         {supported}"
    )]
    ServerSchemaTooNew {
        /// The database (URL without password).
        database: String,
        /// The newest migration applied there.
        found: i64,
        /// The newest migration this build knows.
        supported: i64,
    },
    /// The database server (PostgreSQL) could not be reached or did not answer in time:
    /// connection refused or lost, pool exhausted, statement or lock timeout. Transient: the
    /// daemon refuses stores with A700 (out of resources) and retries later; the backend
    /// reconnects by itself.
    #[error("queue: {op}: database unavailable: {source}")]
    Unavailable {
        /// The queue operation.
        op: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A database server (PostgreSQL) refused a statement or returned something unexpected.
    #[error("queue: {op}: {source}")]
    Backend {
        /// The queue operation.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QueueError {
    /// True when the database could not be reached or did not answer in time: the caller
    /// should answer "out of resources, try later" (A700, HTTP 503) rather than "failed".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

/// Attaches the operation name to a rusqlite error.
pub(crate) trait Context<T> {
    fn ctx(self, op: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, op: &'static str) -> Result<T> {
        self.map_err(|source| QueueError::Database { op, source })
    }
}

//! The durable forward queue: one job per (instance, destination), retries and dead letters.
//!
//! Every instance the daemon acknowledged must eventually reach each destination its routing
//! rules chose, across crashes and restarts, or end up as a visible dead letter. This crate
//! keeps that promise in a database (embedded SQLite by default, see [`SqliteQueue`]) behind
//! the object-safe [`ForwardQueue`] trait, so that another backend (PostgreSQL) can follow.
//!
//! Two tables, two state machines (see [`forward_queue`] for the transitions):
//!
//! ```text
//! instances: received ──route_instance──▶ routed ──purgeable, mark_done──▶ done (files purged)
//!                     (no destination: routed with no job, purged after the retention)
//! jobs:      queued ──lease──▶ in_flight ──complete(Delivered)──▶ delivered
//!              ▲                  │ complete(Retry), attempts < max: next_attempt_at = now + backoff
//!              └──────────────────┤ recover() at start-up
//!                                 └ complete(Retry) at max attempts, complete(Dead) ──▶ dead
//!            dead ──retry_job / retry_dead──▶ queued (attempts reset; refused once the files are purged)
//!            queued / dead ──drop_job──▶ dead ("dropped by operator")
//! ```
//!
//! The crate is synchronous and knows nothing of DICOM encoding, spool files or the network:
//! instance ids are the spool's ids as text, times are [`UnixMillis`] passed in by the caller.
#![deny(missing_docs)]

mod error;
pub mod forward_queue;
mod model;
mod policy;
pub mod sqlite;

pub use error::{QueueError, Result};
pub use forward_queue::ForwardQueue;
pub use model::{
    Counts, InstanceCounts, InstanceDetail, InstanceRecord, InstanceState, Job, JobCounts,
    JobFilter, JobId, JobState, JobView, NewInstance, Outcome, RecoveryReport, Retention,
    UnixMillis, UnknownState,
};
pub use policy::RetryPolicy;
pub use sqlite::SqliteQueue;

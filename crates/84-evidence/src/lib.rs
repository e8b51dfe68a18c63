//! Evidence: what processing decided for each instance, and why, kept beside the spool until
//! the instance is purged, so a PACS admin can look at it in the console.
//!
//! The forward queue keeps what forwarding needs (states, attempts, the last error); it does
//! not keep the model's scores, the image the model saw, the routing rule that matched or
//! each attempt of a job. This crate does, in a small SQLite file of its own
//! (`evidence.sqlite` next to the queue database), written by the node at processing time
//! ([`EvidenceStore::record`]) and at each forward attempt ([`EvidenceStore::job_event`]),
//! read by the console, and removed with the instance by the purger
//! ([`EvidenceStore::remove`]).
//!
//! Evidence is best effort: it is never a reason to refuse, hold or fail an instance. Its
//! writes are not fsynced (WAL, `synchronous = NORMAL`): a crash can lose the last few
//! records, never the instance.
//!
//! - [`Evidence`]: one instance's record (search fields, label, scores, decision).
//! - [`EvidenceStore`]: the SQLite file: record, look up, search, purge.
//! - [`model_input_png`]: the model's input tensor as the grayscale PNG the console shows.
#![deny(missing_docs)]

mod png;
mod record;
mod store;

pub use png::model_input_png;
pub use record::{Evidence, JobEvent, Search};
pub use store::{EvidenceError, EvidenceStore};

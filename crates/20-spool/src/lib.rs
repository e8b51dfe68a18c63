//! Durable instance files: write, fsync, rename, purge; and the storage seam for instance bytes.
//!
//! [`InstanceStore`] is the trait every storage backend implements (local files here,
//! PostgreSQL in `radroute-store-postgres`); [`Spool`] is the local backend. The feature
//! `suite` exposes the conformance tests every backend runs ([`suite`]).
//!
//! The receive path may answer a C-STORE with success only once the instance is on stable
//! storage. This crate is the single place that knows how to get bytes there safely:
//! write to a temporary file, `fsync` it, rename it into place, `fsync` the directory.
//! A reader therefore never sees a partial file under a final name, and an I/O failure
//! (disk full included) comes back as a typed [`SpoolError`] that the daemon maps to
//! DICOM status A700.
//!
//! The crate is synchronous; the daemon calls it from `spawn_blocking`.
//!
//! Layout of a spool directory (see [`spool`] for invariants and crash recovery):
//!
//! ```text
//! <dir>/.lock              advisory lock: one Spool per directory
//! <dir>/incoming/<id>.dcm  instance as received
//! <dir>/processed/<id>.dcm instance after coercion (label written)
//! <dir>/header/<id>.dcm    or only its coerced header, the pixels staying in incoming/
//! <dir>/tmp/               files being written (streaming puts too); emptied at open
//! <dir>/quarantine/        files moved aside (unreadable); never deleted by radroute
//! ```
#![deny(missing_docs)]

mod error;
pub mod fs;
mod id;
pub mod put;
pub mod spool;
mod store;
#[cfg(feature = "suite")]
pub mod suite;

pub use error::{Result, SpoolError};
pub use id::{InstanceId, InvalidInstanceId};
pub use put::{BufferedPut, PutStream, SpoolPut};
pub use spool::{FileKind, FileStat, Spool, Usage};
pub use store::InstanceStore;

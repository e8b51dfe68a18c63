//! The sending side of radroute: C-STORE SCU forwarding to PACS destinations.
//!
//! A forward worker (in the binary) leases a batch of jobs for one destination from the queue and
//! sends it over a [`Session`]: an association that stays open for the next batches while they
//! come and fit its presentation contexts ([`send_batch`] is the one-shot form). Each instance goes in its
//! original transfer syntax when the destination accepts it, otherwise decompressed to Explicit
//! VR Little Endian, otherwise its job fails with a clear reason. The peer's status decides the
//! outcome ([`SendOutcome`]): success and warnings are delivered, out-of-resources and
//! association failures are retried, other refusals are permanent.
//!
//! Modules:
//! - [`destination`]: [`Destination`], where and how to connect.
//! - [`part10`]: reading a spooled Part-10 file: its dataset bytes and, when needed, a transcode.
//! - [`pdata`]: the data set on the wire; over plain TCP the pixels go from the spool file to the
//!   socket without passing through user space (`sendfile`).
//! - [`scu`]: the association, presentation contexts and the store loop.
//! - [`outcome`]: mapping a DIMSE status or an error to an outcome.
//!
//! Architecture invariant: no knowledge of receive, routing or classification; this crate sends
//! files it is given and reports what happened to each.
#![deny(missing_docs)]

pub mod destination;
pub mod outcome;
pub mod part10;
pub mod pdata;
pub mod scu;

pub use destination::{ClientTls, Destination};
pub use outcome::SendOutcome;
pub use scu::{echo, retry_all, send_batch, Outgoing, Session};

/// Why talking to a destination failed as a whole (before any per-instance outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// Connecting or negotiating the association failed.
    #[error("association with {destination} ({address}) failed: {reason}")]
    Association {
        /// Destination name.
        destination: String,
        /// Its address.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// The association broke while messages were exchanged.
    #[error("association with {destination} broke: {reason}")]
    Broken {
        /// Destination name.
        destination: String,
        /// What went wrong.
        reason: String,
    },
}

//! The receiving side of radroute: a DICOM C-STORE SCP on tokio and dicom-ul.
//!
//! radroute is a DICOM node first: modalities open associations to it and send instances with
//! C-STORE; C-ECHO answers "are you there?". This crate owns everything up to the point where a
//! complete data set is in memory: listening, the association limit, negotiation policy (which
//! SOP classes and transfer syntaxes are accepted, which calling AE titles may connect),
//! per-association tasks, DIMSE message reassembly and the responses. What happens to an
//! instance is not its business: it hands each one to a [`StoreHandler`] and answers the peer
//! with the status the handler returns. The handler (in the binary) spools the instance and
//! commits it to the queue before it returns success.
//!
//! Modules:
//! - [`options`]: [`ScpOptions`], the negotiation and limit policy.
//! - [`access`]: the calling-AE / source-address allow-list.
//! - [`server`]: the accept loop ([`serve`]), the negotiating pool, graceful shutdown.
//! - `negotiate`: one connection, from accept to an admitted association, under ARTIM.
//! - [`admission`]: association slots (global and per calling AE).
//! - [`association`]: one association: receive PDUs, reassemble, dispatch, respond.
//! - [`budget`]: the receive memory budget shared by all associations.
//! - [`reject`]: peeking the A-ASSOCIATE-RQ; A-ASSOCIATE-RJ for connections refused a slot.
//! - `stream`: write-behind of a data set to the handler's [`DataSetSink`] while it arrives.
//!
//! Architecture invariants: no spool, queue, classification or forwarding code here; a bad peer
//! or a bad data set ends at most its own association, never the listener.
#![deny(missing_docs)]

pub mod access;
pub mod admission;
pub mod association;
pub mod budget;
mod negotiate;
pub mod options;
pub mod reject;
pub mod server;
mod stream;

pub use access::{AccessPolicy, AllowedPeer};
pub use association::AssociationInfo;
pub use options::ScpOptions;
pub use server::{serve, ServeError};

use radroute_dimse::Status;

/// One instance as received: the data set bytes exactly as they travelled, in the transfer
/// syntax negotiated for their presentation context.
#[derive(Debug)]
pub struct IncomingInstance {
    /// The association it arrived on.
    pub association: std::sync::Arc<AssociationInfo>,
    /// Affected SOP Class UID from the C-STORE-RQ.
    pub sop_class_uid: String,
    /// Affected SOP Instance UID from the C-STORE-RQ.
    pub sop_instance_uid: String,
    /// Transfer syntax UID of the presentation context.
    pub transfer_syntax: String,
    /// The data set, encoded in `transfer_syntax`.
    pub data: Vec<u8>,
}

/// What the handler decided about an instance: the DIMSE status to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreResult {
    /// Status for the C-STORE-RSP.
    pub status: Status,
    /// Error Comment for failures (at most 64 characters are sent).
    pub comment: Option<String>,
}

impl StoreResult {
    /// Stored.
    pub fn success() -> Self {
        StoreResult {
            status: Status::SUCCESS,
            comment: None,
        }
    }

    /// Not stored, with a status and a reason.
    pub fn failure(status: Status, comment: impl Into<String>) -> Self {
        StoreResult {
            status,
            comment: Some(comment.into()),
        }
    }
}

/// What is known of an instance when its data set starts to arrive: the C-STORE-RQ's UIDs
/// and the presentation context's transfer syntax ([`StoreHandler::begin`]).
#[derive(Debug)]
pub struct InstanceStart<'a> {
    /// The association it arrives on.
    pub association: &'a std::sync::Arc<AssociationInfo>,
    /// Affected SOP Class UID from the C-STORE-RQ.
    pub sop_class_uid: &'a str,
    /// Affected SOP Instance UID from the C-STORE-RQ.
    pub sop_instance_uid: &'a str,
    /// Transfer syntax UID of the presentation context.
    pub transfer_syntax: &'a str,
}

/// Takes a data set's bytes, in order, while they arrive (write-behind, see [`StoreHandler::begin`]).
/// The SCP calls it on a blocking thread, so it may do file I/O; it drops the sink on a blocking
/// thread too when the instance is not stored (refused, aborted, association lost).
pub trait DataSetSink: Send + 'static {
    /// Takes the next bytes. An error stops the stream: no more bytes come.
    fn write(&mut self, bytes: &[u8]) -> Result<(), String>;

    /// Takes the next bytes as the PDV buffers they arrived in, in order, as [`write`] of each
    /// would; a sink that writes a file gathers them into one system call.
    ///
    /// [`write`]: DataSetSink::write
    fn write_parts(&mut self, parts: &[Vec<u8>]) -> Result<(), String> {
        parts.iter().try_for_each(|part| self.write(part))
    }
}

/// A handler without write-behind.
impl DataSetSink for std::convert::Infallible {
    fn write(&mut self, _bytes: &[u8]) -> Result<(), String> {
        match *self {}
    }
}

/// What became of a data set's write-behind: the sink, every byte of the data set written to it,
/// or why the stream stopped.
pub type Streamed<S> = Result<S, String>;

/// Receives every instance the SCP accepts on the wire and decides the answer.
///
/// The SCP awaits the returned future before it sends the C-STORE-RSP, so a success status must
/// mean the instance is durable.
pub trait StoreHandler: Send + Sync + 'static {
    /// Where a data set's bytes go while it arrives ([`std::convert::Infallible`]: nowhere).
    type Sink: DataSetSink;

    /// Called when a multi-PDV data set starts to arrive: a sink returned here gets its bytes
    /// while they arrive (so a durable write can overlap the transfer) and is handed back to
    /// [`StoreHandler::store`]. Must not block. The data set is still gathered in memory and
    /// given whole to `store`. The default streams nothing.
    fn begin(&self, start: &InstanceStart<'_>) -> Option<Self::Sink> {
        let _ = start;
        None
    }

    /// Stores one instance; `streamed` is what became of the sink [`StoreHandler::begin`]
    /// returned for it, if any.
    fn store(
        &self,
        instance: IncomingInstance,
        streamed: Option<Streamed<Self::Sink>>,
    ) -> impl std::future::Future<Output = StoreResult> + Send;
}

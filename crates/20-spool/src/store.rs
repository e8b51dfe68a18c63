//! The storage seam for instance bytes: [`InstanceStore`].
//!
//! The daemon keeps, per instance, the bytes as received ([`FileKind::Incoming`]) and at most
//! one derived file ([`FileKind::Processed`] or [`FileKind::Header`]). Where those bytes live is
//! a backend's business: the local spool directory ([`crate::Spool`], single node) or
//! PostgreSQL (`radroute-store-postgres`, cluster mode); an object store can follow behind the
//! same trait. Every backend passes the same conformance suite ([`crate::suite`]).
//!
//! # Contract
//!
//! - [`InstanceStore::put`] returns `Ok` only once the bytes are durable (files and directory
//!   `fsync`ed; a committed PostgreSQL transaction with `synchronous_commit = on`). Only then
//!   may the daemon acknowledge a C-STORE. On `Err` nothing is visible under the id and kind.
//! - A reader never sees a partial object: `read`, `local_file`, `contains`, `list` show an
//!   object entirely or not at all.
//! - A put of a derived kind replaces an earlier one of the same id (re-processing).
//! - [`InstanceStore::remove`] deletes the derived objects before the incoming one, so an
//!   interrupted purge never leaves a header without the pixels it is joined to.
//! - Errors are typed ([`crate::SpoolError`]); the daemon maps every put failure to A700.
//!
//! # Local files for the fast paths
//!
//! The forwarder sends files with `sendfile(2)` and the processing step parses files lazily, so
//! readers ask for a local file with [`InstanceStore::local_file`]. The local spool returns its
//! own file (no copy); a remote backend returns a copy in its local scratch directory, written
//! when the instance was put on this node or fetched on first use on another node. That copy
//! is a cache, never the durable copy.
//!
//! The trait is synchronous like the queue: the daemon calls it from blocking threads.

use std::fmt;
use std::path::PathBuf;

use crate::put::{BufferedPut, PutStream};
use crate::{FileKind, FileStat, InstanceId, Result, Usage};

/// Where instance bytes are kept. Object safe: the daemon holds an `Arc<dyn InstanceStore>`.
pub trait InstanceStore: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics (`"local"`, `"postgres"`).
    fn backend(&self) -> &'static str;

    /// Stores `parts`, concatenated, as the `kind` object of `id`, durably before returning
    /// `Ok` (see the module's contract). An incoming object is written once; a derived one
    /// replaces an earlier one.
    fn put(&self, kind: FileKind, id: &InstanceId, parts: &[&[u8]]) -> Result<()>;

    /// Begins a put of the `kind` object of `id` whose bytes come piece by piece (the receive
    /// path writes a data set while it arrives); committed with the guarantees of
    /// [`InstanceStore::put`], aborted when dropped (see [`crate::put`]). The default gathers the
    /// bytes in memory and calls `put` at commit; the local spool writes its file as they come.
    fn begin_put(&self, kind: FileKind, id: &InstanceId) -> Result<Box<dyn PutStream>> {
        Ok(Box::new(BufferedPut::new(kind, id)))
    }

    /// The whole `kind` object of `id`; [`crate::SpoolError::NotFound`] when there is none.
    fn read(&self, kind: FileKind, id: &InstanceId) -> Result<Vec<u8>>;

    /// A complete local file holding the `kind` object of `id`, for readers that want a file
    /// (sendfile, lazy parsing). For a remote backend it is a scratch copy: valid until the
    /// instance is removed, never written to by the caller.
    fn local_file(&self, kind: FileKind, id: &InstanceId) -> Result<PathBuf>;

    /// True if the `kind` object of `id` exists (quarantined ones do not count).
    fn contains(&self, kind: FileKind, id: &InstanceId) -> Result<bool>;

    /// Size and time written of the `kind` object of `id`.
    fn stat(&self, kind: FileKind, id: &InstanceId) -> Result<FileStat>;

    /// Removes the `kind` object of `id` if there is one (missing is not an error).
    fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> Result<()>;

    /// Removes every object of `id`, derived kinds first, the incoming one last (missing ones
    /// are ignored), durably.
    fn remove(&self, id: &InstanceId) -> Result<()>;

    /// Ids that have a `kind` object, sorted (by reception time for generated ids).
    fn list(&self, kind: FileKind) -> Result<Vec<InstanceId>>;

    /// Moves the `kind` object of `id` aside (unreadable, but maybe acknowledged: an operator
    /// decides, radroute never deletes it) and says where it went, for the log. Afterwards
    /// `contains`, `read` and `list` no longer see it.
    fn quarantine(&self, kind: FileKind, id: &InstanceId) -> Result<String>;

    /// Bytes free where this node writes locally (the spool or scratch file system), for the
    /// daemon's low-space watermark. A remote backend's own space is its operator's to watch;
    /// it reports a full disk as a put error ([`crate::SpoolError::is_storage_full`]).
    fn free_bytes(&self) -> Result<u64>;

    /// Number and total size of the stored objects of every kind (quarantined ones excluded).
    fn usage(&self) -> Result<Usage>;

    /// Fails when a put would fail for a reason outside this node's control right now (the
    /// spool is not writable, PostgreSQL is unreachable): the daemon's `/readyz`.
    fn check_ready(&self) -> Result<()>;
}

/// The local spool directory is the single-node backend: [`InstanceStore::local_file`] is the
/// spool file itself, so the fast paths read it without a copy.
impl InstanceStore for crate::Spool {
    fn backend(&self) -> &'static str {
        "local"
    }

    fn put(&self, kind: FileKind, id: &InstanceId, parts: &[&[u8]]) -> Result<()> {
        self.store_parts(kind, id, parts).map(|_| ())
    }

    fn begin_put(&self, kind: FileKind, id: &InstanceId) -> Result<Box<dyn PutStream>> {
        Ok(Box::new(self.begin_store(kind, id)?))
    }

    fn read(&self, kind: FileKind, id: &InstanceId) -> Result<Vec<u8>> {
        crate::Spool::read(self, kind, id)
    }

    fn local_file(&self, kind: FileKind, id: &InstanceId) -> Result<PathBuf> {
        let path = self.path(kind, id);
        if path.is_file() {
            Ok(path)
        } else {
            Err(crate::SpoolError::NotFound {
                kind,
                id: id.to_string(),
                path,
            })
        }
    }

    fn contains(&self, kind: FileKind, id: &InstanceId) -> Result<bool> {
        Ok(crate::Spool::contains(self, kind, id))
    }

    fn stat(&self, kind: FileKind, id: &InstanceId) -> Result<FileStat> {
        crate::Spool::stat(self, kind, id)
    }

    fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> Result<()> {
        crate::Spool::remove_kind(self, kind, id)
    }

    fn remove(&self, id: &InstanceId) -> Result<()> {
        crate::Spool::remove(self, id)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<InstanceId>> {
        crate::Spool::list(self, kind)
    }

    fn quarantine(&self, kind: FileKind, id: &InstanceId) -> Result<String> {
        crate::Spool::quarantine(self, kind, id).map(|p| p.display().to_string())
    }

    fn free_bytes(&self) -> Result<u64> {
        crate::Spool::free_bytes(self)
    }

    fn usage(&self) -> Result<Usage> {
        crate::Spool::usage(self)
    }

    fn check_ready(&self) -> Result<()> {
        self.probe_writable()
    }
}

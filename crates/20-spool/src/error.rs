//! The crate's error type: every variant carries the path or id it concerns.

use std::io;
use std::path::PathBuf;

use crate::FileKind;

/// Result alias of this crate.
pub type Result<T, E = SpoolError> = std::result::Result<T, E>;

/// Why a spool operation failed.
///
/// The daemon answers a C-STORE with A700 ("out of resources") for any error of
/// [`crate::Spool::store`]; [`SpoolError::is_storage_full`] lets it log and count the disk-full
/// case separately.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// An I/O operation failed.
    #[error("spool: {op} {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"rename"`, `"fsync directory"`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file system is full (`ENOSPC`) or the quota is exhausted (`EDQUOT`).
    #[error("spool: storage full while trying to {op} {path}: {source}")]
    StorageFull {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The requested instance file does not exist.
    #[error("spool: no {kind} file for instance {id} at {path}")]
    NotFound {
        /// Which file was requested.
        kind: FileKind,
        /// The instance.
        id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A storage backend other than local files (PostgreSQL) failed: unreachable, a statement
    /// timed out, a constraint, or its disk is full (`full`). The daemon answers A700 as for an
    /// I/O error, so the modality keeps the image and retries.
    #[error("{backend}: {op} {target}: {source}")]
    Backend {
        /// The backend (`"postgres"`).
        backend: &'static str,
        /// What was being done (`"put"`, `"read"`, ...).
        op: &'static str,
        /// The instance and file kind concerned, or the table.
        target: String,
        /// True when the backend reports that it is out of space.
        full: bool,
        /// The underlying error (its text never holds a password: backends redact).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process (or another [`crate::Spool`] in this one) holds the spool directory.
    #[error("spool: directory {path} is locked by another spool instance")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

impl SpoolError {
    /// Builds the error of a failed I/O operation, classifying "disk full" separately.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_full(&source) {
            SpoolError::StorageFull { op, path, source }
        } else {
            SpoolError::Io { op, path, source }
        }
    }

    /// True when the failure is a full disk or an exhausted quota.
    pub fn is_storage_full(&self) -> bool {
        matches!(
            self,
            SpoolError::StorageFull { .. } | SpoolError::Backend { full: true, .. }
        )
    }
}

fn is_full(e: &io::Error) -> bool {
    let nospc = rustix::io::Errno::NOSPC.raw_os_error();
    let dquot = rustix::io::Errno::DQUOT.raw_os_error();
    matches!(e.raw_os_error(), Some(c) if c == nospc || c == dquot)
}

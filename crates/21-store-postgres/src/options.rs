//! How a [`crate::PgStore`] lays out and bounds its work.

use std::path::PathBuf;
use std::time::Duration;

/// Where the bytes of an object go inside PostgreSQL.
///
/// Both are implemented so that the choice rests on measurements (docs/cluster.md, storage
/// section, and `tests/bench/pg_storage.sh`); [`Layout::Chunks`] is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Rows of `instance_chunks` (`bytea`, `chunk_bytes` each, stored out of line without
    /// compression): ordinary rows, so deleting an instance is a cascade delete that plain
    /// (auto)vacuum reclaims, and dumps, replication and `pg_total_relation_size` see them.
    Chunks,
    /// One large object per instance (`lo_from_bytea` / `lo_put`, freed with `lo_unlink` in the
    /// deleting transaction): kept in `pg_largeobject` in 2 KiB pages.
    LargeObjects,
}

impl Layout {
    /// The value stored in `instance_objects.layout`.
    pub(crate) fn code(self) -> i16 {
        match self {
            Layout::Chunks => 0,
            Layout::LargeObjects => 1,
        }
    }
}

/// Settings of a [`crate::PgStore`].
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    /// Layout of newly written objects (objects already written are read in whichever layout
    /// they have).
    pub layout: Layout,
    /// Bytes per chunk row (or per `lo_put` call), 64 KiB..=16 MiB. Default 1 MiB.
    pub chunk_bytes: usize,
    /// Upper bound of one store operation, pool wait included. A put past it fails (A700)
    /// and its transaction is rolled back. Default 30 s.
    pub op_timeout: Duration,
    /// Local scratch directory for [`radroute_spool::InstanceStore::local_file`] copies (a
    /// cache, never the durable copy). One `PgStore` per directory (locked).
    pub scratch: PathBuf,
}

impl PgStoreOptions {
    /// Defaults (chunks of 1 MiB, 30 s per operation) with the given scratch directory.
    pub fn new(scratch: impl Into<PathBuf>) -> PgStoreOptions {
        PgStoreOptions {
            layout: Layout::Chunks,
            chunk_bytes: 1 << 20,
            op_timeout: Duration::from_secs(30),
            scratch: scratch.into(),
        }
    }

    /// The chunk size clamped to 64 KiB..=16 MiB.
    pub(crate) fn chunk(&self) -> usize {
        self.chunk_bytes.clamp(64 << 10, 16 << 20)
    }
}

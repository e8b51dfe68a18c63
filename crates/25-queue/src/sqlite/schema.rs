//! Schema creation and migration, versioned by SQLite's `user_version` pragma.
//!
//! Version 0 is an empty file; each entry of `MIGRATIONS` moves the schema one version up and
//! runs in the same transaction as the `user_version` update, so a crash mid-migration leaves
//! the previous version intact. A database newer than this build is refused, not guessed at.
//!
//! Version 1:
//!
//! - `instances(id TEXT PK, sop_instance_uid, sop_class_uid, transfer_syntax,
//!   study_instance_uid NULL, calling_ae, called_ae, peer_addr, received_at, updated_at,
//!   state received|routed|done, label NULL, processing_note NULL, bytes)`
//! - `jobs(id INTEGER PK AUTOINCREMENT (never reused), instance_id FK, destination,
//!   state queued|in_flight|delivered|dead, attempts, next_attempt_at, last_error NULL,
//!   last_status NULL, created_at, updated_at, UNIQUE(instance_id, destination))`
//!
//! Version 2: `jobs.priority` (-1 low, 0 medium, 1 high).
//!
//! Version 3 (data only): `done` now means "files purged". Earlier releases marked an
//! instance routed nowhere (a drop route, no matching route) `done` at once and never purged
//! its files; the migration turns those rows (`done` without any job) back to `routed`, so the
//! purger removes the files they leaked and marks them `done` again.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::Context;
use crate::{QueueError, Result};

/// Schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[n]` upgrades version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE instances (
    id                 TEXT PRIMARY KEY NOT NULL,
    sop_instance_uid   TEXT NOT NULL,
    sop_class_uid      TEXT NOT NULL,
    transfer_syntax    TEXT NOT NULL,
    study_instance_uid TEXT,
    calling_ae         TEXT NOT NULL,
    called_ae          TEXT NOT NULL,
    peer_addr          TEXT NOT NULL,
    received_at        INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('received', 'routed', 'done')),
    label              TEXT,
    processing_note    TEXT,
    bytes              INTEGER NOT NULL
);
CREATE INDEX instances_by_state ON instances (state, received_at);
CREATE INDEX instances_by_study ON instances (study_instance_uid);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id     TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'in_flight', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    last_status     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (instance_id, destination)
);
CREATE INDEX jobs_due ON jobs (destination, state, next_attempt_at);
CREATE INDEX jobs_by_state ON jobs (state);
"#,
    r#"
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
UPDATE instances SET state = 'routed'
 WHERE state = 'done'
   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.instance_id = instances.id);
"#,
];

/// Brings the schema of `conn` (the file at `path`) to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("migrate")?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("migrate")?;
    if found > SCHEMA_VERSION {
        return Err(QueueError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).ctx("migrate")?;
        tx.pragma_update(None, "user_version", version as i64 + 1)
            .ctx("migrate")?;
    }
    tx.commit().ctx("migrate")
}

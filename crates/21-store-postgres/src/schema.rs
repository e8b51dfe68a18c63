//! Versioned migrations of the store's tables (refinery), applied at start or by
//! `radroute migrate`.

use deadpool_postgres::{Object, Pool};
use radroute_spool::SpoolError;

use crate::error;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// History table of the store's migrations (the queue and the cluster keep their own).
pub const HISTORY_TABLE: &str = "radroute_store_schema";

/// Advisory lock key held while migrating, so two nodes starting together apply each
/// migration once ("rrstore" in ASCII).
const LOCK_KEY: i64 = 0x0072_7273_746f_7265;

/// Applies the store's pending migrations, under an advisory lock. Idempotent; returns the
/// names of the migrations applied by this call.
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, SpoolError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| error::other("migrate", "connect", e))?;
    let report = run_locked(
        &mut client,
        LOCK_KEY,
        embedded::migrations::runner().set_migration_table_name(HISTORY_TABLE),
    )
    .await
    .map_err(|e| match e {
        LockedMigrationError::Lock(e) => error::db("migrate", "advisory lock", e),
        LockedMigrationError::Migrate(e) => error::other("migrate", HISTORY_TABLE, e.to_string()),
        LockedMigrationError::Unlock(e) => error::db("migrate", "advisory unlock", e),
    })?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Where [`run_locked`] failed.
#[derive(Debug)]
pub enum LockedMigrationError {
    /// Taking the advisory lock.
    Lock(tokio_postgres::Error),
    /// A migration (nothing after it ran; the lock was given back).
    Migrate(refinery::Error),
    /// Giving the advisory lock back (every migration ran).
    Unlock(tokio_postgres::Error),
}

/// Runs `runner` on `client` under the session advisory lock `key`, so that nodes starting
/// together apply each migration once; the lock is given back whether the run failed or not.
/// Shared by the cluster's components that keep their own migration history in the database
/// (the instance store here, the study state in radroute-node).
pub async fn run_locked(
    client: &mut Object,
    key: i64,
    runner: &refinery::Runner,
) -> Result<refinery::Report, LockedMigrationError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .map_err(LockedMigrationError::Lock)?;
    let report = runner.run_async(&mut ***client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await;
    let report = report.map_err(LockedMigrationError::Migrate)?;
    unlock.map_err(LockedMigrationError::Unlock)?;
    Ok(report)
}

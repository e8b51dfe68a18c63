//! Versioned migrations of the store's tables (refinery), applied at start or by
//! `radroute migrate`.

use deadpool_postgres::Pool;
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
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| error::db("migrate", "advisory lock", e))?;
    let report = embedded::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(&mut **client)
        .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let report = report.map_err(|e| error::other("migrate", HISTORY_TABLE, e.to_string()))?;
    unlock.map_err(|e| error::db("migrate", "advisory unlock", e))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

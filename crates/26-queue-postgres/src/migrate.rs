//! Versioned schema migrations with refinery, applied at start ([`crate::PostgresQueue::connect`],
//! [`crate::PostgresQueue::new`]) or by hand (`radroute migrate` calls [`migrate`]).
//!
//! The SQL files are in `crates/26-queue-postgres/migrations` (`V<n>__<name>.sql`), embedded at
//! build time. refinery records what ran in its history table, named `radroute_queue_schema`
//! here so that other components (instance storage, cluster state) keep their own histories in
//! the same database without colliding. Each migration runs in its own transaction.
//!
//! Two nodes starting together would race; the whole run holds a session advisory lock
//! ([`LOCK_KEY`]), so the second waits and then finds nothing to do. A database migrated by a
//! newer radroute (a version this build does not know) is refused with
//! `QueueError::ServerSchemaTooNew` before anything runs.

use deadpool_postgres::{Object, Pool};
use radroute_queue::{QueueError, Result};

use crate::errors;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's history table of the queue's migrations.
pub const HISTORY_TABLE: &str = "radroute_queue_schema";

/// Key of the advisory lock held while migrating ("rrqueue" in ASCII).
pub const LOCK_KEY: i64 = 0x0072_7271_7565_7565;

/// The newest migration this build knows.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Brings the queue's tables to [`latest_version`]. Idempotent; safe to run from several
/// nodes at once. `database` names the database in errors (a URL without password).
pub async fn migrate(pool: &Pool, database: &str) -> Result<()> {
    const OP: &str = "migrate";
    let mut client = pool.get().await.map_err(|e| errors::pool(OP, e))?;
    let result = migrate_on(&mut client, database).await;
    // The connection's session settings (timeouts, lock) changed: never reuse it.
    let _ = Object::take(client);
    result
}

async fn migrate_on(client: &mut Object, database: &str) -> Result<()> {
    const OP: &str = "migrate";
    // Migrations may take longer than a queue statement; the lock wait must not be endless.
    client
        .batch_execute("SET statement_timeout = '10min'; SET lock_timeout = '2min'")
        .await
        .map_err(|e| errors::db(OP, e))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| errors::db(OP, e))?;
    let result = run_locked(client, database).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| errors::db(OP, e));
    result.and(unlock.map(|_| ()))
}

async fn run_locked(client: &mut Object, database: &str) -> Result<()> {
    const OP: &str = "migrate";
    let found: Option<i64> = {
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
            .await
            .map_err(|e| errors::db(OP, e))?;
        if exists.get::<_, bool>(0) {
            let row = client
                .query_one(
                    &format!("SELECT MAX(version)::bigint FROM {HISTORY_TABLE}"),
                    &[],
                )
                .await
                .map_err(|e| errors::db(OP, e))?;
            row.try_get(0).map_err(|e| errors::row(OP, e))?
        } else {
            None
        }
    };
    let supported = latest_version();
    if let Some(found) = found.filter(|&v| v > supported) {
        return Err(QueueError::ServerSchemaTooNew {
            database: database.to_string(),
            found,
            supported,
        });
    }
    let raw: &mut tokio_postgres::Client = client;
    embedded::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(raw)
        .await
        .map_err(|e| QueueError::Backend {
            op: OP,
            source: Box::new(e),
        })?;
    Ok(())
}

//! Instance bytes in PostgreSQL: the cluster-mode backend of [`radroute_spool::InstanceStore`].
//!
//! In cluster mode PostgreSQL holds all durable state, the instance bytes included, so any node
//! can process and forward an instance that another node received, and a node whose disk is
//! gone loses nothing it acknowledged. The local `[spool] dir` becomes scratch: copies for the
//! fast paths (`sendfile`, lazy parsing), re-fetched from PostgreSQL when absent.
//!
//! - Durability: a put is one transaction with `synchronous_commit = on`; its commit is the
//!   durability point. [`PgStore::put_with`] lets the caller add its own rows (the queue's
//!   instance row) to that transaction, so a C-STORE success can wait for the one commit that
//!   holds both the bytes and the instance row.
//! - Layout: chunk rows (`instance_chunks`, the default) or large objects, chosen by
//!   [`PgStoreOptions::layout`]; see docs/cluster.md for the measurements behind the default.
//! - Bridging: the trait is synchronous (called from blocking threads, like the queue); each
//!   call runs on a tokio runtime handle with `block_on`, bounded by
//!   [`PgStoreOptions::op_timeout`]. It must not be called from an async task.
//! - Schema: versioned migrations ([`migrate`]), history table `radroute_store_schema`.
#![deny(missing_docs)]

mod error;
mod options;
mod schema;
mod scratch;
mod sql;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use deadpool_postgres::Pool;
use radroute_spool::{FileKind, FileStat, InstanceId, InstanceStore, SpoolError, Usage};
use tokio::runtime::Handle;
use tokio_postgres::Transaction;

pub use error::BoxError;
pub use options::{Layout, PgStoreOptions};
pub use schema::{migrate, run_locked, LockedMigrationError, HISTORY_TABLE};

use error::target;
use scratch::Scratch;

/// The future a caller's step in a put's transaction returns ([`PgStore::put_with`]).
pub type TxFuture<'t> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 't>>;

/// Result alias (the spool's error type: the daemon handles both backends alike).
pub type Result<T, E = SpoolError> = std::result::Result<T, E>;

/// Instance bytes in PostgreSQL, with a local scratch directory for file-based readers.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    rt: Runtime,
    options: PgStoreOptions,
    scratch: Scratch,
}

/// The runtime the synchronous calls run on: the daemon's (a handle) or one of our own.
#[derive(Debug)]
struct Runtime {
    handle: Handle,
    owned: Option<tokio::runtime::Runtime>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a runtime may happen on an async thread; never block there.
        if let Some(rt) = self.owned.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// A store on `pool` (shared with the queue), running its calls on `handle` (the
    /// daemon's runtime). Opens (locks, empties) the scratch directory. Does not migrate.
    pub fn new(pool: Pool, handle: Handle, options: PgStoreOptions) -> Result<PgStore> {
        let scratch = Scratch::open(&options.scratch)?;
        Ok(PgStore {
            pool,
            rt: Runtime {
                handle,
                owned: None,
            },
            options,
            scratch,
        })
    }

    /// A store with its own pool (of `max_connections`) and its own small runtime, for tools,
    /// benches and tests. `url` is a libpq-style URL (`postgresql://user@host:port/db`).
    /// Applies the migrations.
    pub fn connect(url: &str, max_connections: usize, options: PgStoreOptions) -> Result<PgStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-store")
            .enable_all()
            .build()
            .map_err(|e| error::other("connect", "runtime", e))?;
        let pool = pool_for(url, max_connections, options.op_timeout)?;
        rt.block_on(migrate(&pool))?;
        let scratch = Scratch::open(&options.scratch)?;
        Ok(PgStore {
            pool,
            rt: Runtime {
                handle: rt.handle().clone(),
                owned: Some(rt),
            },
            options,
            scratch,
        })
    }

    /// Where local copies are kept.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.scratch.root()
    }

    /// The pool (for callers that run their own statements next to the store's).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Like [`InstanceStore::put`], running `also` inside the same transaction after the bytes
    /// are written and before the commit: the caller's rows (the queue's instance row) and the
    /// bytes commit together or not at all. An error of `also` rolls everything back and comes
    /// back as [`SpoolError::Backend`] with op `"put (caller's step)"` and `also`'s error as
    /// source.
    pub fn put_with<F>(
        &self,
        kind: FileKind,
        id: &InstanceId,
        parts: &[&[u8]],
        also: F,
    ) -> Result<()>
    where
        F: for<'t> FnOnce(&'t Transaction<'t>) -> TxFuture<'t> + Send,
    {
        let what = target(kind, id);
        let (object_id, replaced) = self.run("put", &what, async {
            let mut client = self.client("put", &what).await?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| error::db("put: begin", &what, e))?;
            tx.batch_execute("SET LOCAL synchronous_commit = on")
                .await
                .map_err(|e| error::db("put", &what, e))?;
            let replaced = sql::delete_live(&tx, id.as_str(), Some(kind))
                .await
                .map_err(|e| error::db("put: replace", &what, e))?;
            let object_id = sql::insert(
                &tx,
                id.as_str(),
                kind,
                parts,
                self.options.layout,
                self.options.chunk(),
            )
            .await
            .map_err(|e| error::db("put: write", &what, e))?;
            also(&tx)
                .await
                .map_err(|e| error::other("put (caller's step)", &what, e))?;
            tx.commit()
                .await
                .map_err(|e| error::db("put: commit", &what, e))?;
            Ok((object_id, replaced))
        })?;
        for (_, old) in replaced {
            self.scratch.discard(kind, id, old);
        }
        // The local copy spares the forwarder a fetch; failing to write it costs only that.
        let _ = self.scratch.write(kind, id, object_id, parts);
        Ok(())
    }

    /// Deletes scratch copies whose object is gone (removed or quarantined, perhaps by another
    /// node), and stray files. Call it now and then (the purger's loop); returns how many
    /// files it deleted.
    pub fn sweep_scratch(&self) -> Result<usize> {
        let entries = self.scratch.entries()?;
        let ids: Vec<i64> = entries.iter().filter_map(|(_, o)| *o).collect();
        let live: std::collections::HashSet<i64> = self.run("sweep scratch", "scratch", async {
            let client = self.client("sweep scratch", "scratch").await?;
            let rows = client
                .query(
                    "SELECT object_id FROM instance_objects \
                     WHERE object_id = ANY($1) AND quarantined_at IS NULL",
                    &[&ids],
                )
                .await
                .map_err(|e| error::db("sweep scratch", "instance_objects", e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut removed = 0;
        for (path, object_id) in entries {
            if !object_id.is_some_and(|o| live.contains(&o)) && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Runs `fut` on the runtime within the operation bound.
    fn run<T>(
        &self,
        op: &'static str,
        what: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let limit = self.options.op_timeout;
        self.rt
            .handle
            .block_on(async { tokio::time::timeout(limit, fut).await })
            .unwrap_or_else(|_| Err(error::timeout(op, what, limit)))
    }

    async fn client(&self, op: &'static str, what: &str) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| error::other(op, what, e))
    }

    /// Runs `f` in a transaction committed with `synchronous_commit = on`.
    fn write_tx<T>(
        &self,
        op: &'static str,
        what: &str,
        f: impl for<'t> FnOnce(
            &'t Transaction<'t>,
        ) -> Pin<
            Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 't>,
        >,
    ) -> Result<T> {
        self.run(op, what, async {
            let mut client = self.client(op, what).await?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| error::db(op, what, e))?;
            tx.batch_execute("SET LOCAL synchronous_commit = on")
                .await
                .map_err(|e| error::db(op, what, e))?;
            let out = f(&tx).await.map_err(|e| error::db(op, what, e))?;
            tx.commit().await.map_err(|e| error::db(op, what, e))?;
            Ok(out)
        })
    }

    fn meta(&self, op: &'static str, kind: FileKind, id: &InstanceId) -> Result<Option<sql::Meta>> {
        let what = target(kind, id);
        self.run(op, &what, async {
            let client = self.client(op, &what).await?;
            sql::meta(&**client, id.as_str(), kind)
                .await
                .map_err(|e| error::db(op, &what, e))
        })
    }

    /// Reads the bytes of a live object: its metadata, then its data (one snapshot is not
    /// needed: a cascade delete takes all chunks at once, and `fetch` reports a deleted
    /// object as `None`).
    fn fetch(
        &self,
        op: &'static str,
        kind: FileKind,
        id: &InstanceId,
    ) -> Result<(sql::Meta, Vec<u8>)> {
        let what = target(kind, id);
        self.run(op, &what, async {
            let client = self.client(op, &what).await?;
            let Some(meta) = sql::meta(&**client, id.as_str(), kind)
                .await
                .map_err(|e| error::db(op, &what, e))?
            else {
                return Err(error::not_found(kind, id));
            };
            match sql::fetch(&**client, &meta).await {
                Ok(Some(bytes)) if bytes.len() as u64 == meta.bytes => Ok((meta, bytes)),
                Ok(Some(bytes)) => Err(error::other(
                    op,
                    &what,
                    format!("{} bytes stored, {} recorded", bytes.len(), meta.bytes),
                )),
                Ok(None) => Err(error::not_found(kind, id)),
                Err(e) => Err(error::db(op, &what, e)),
            }
        })
    }
}

/// A pool for `url` with `max` connections, bounded waits, on the tokio runtime.
fn pool_for(url: &str, max: usize, limit: std::time::Duration) -> Result<Pool> {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(url.to_string());
    cfg.connect_timeout = Some(limit);
    cfg.pool = Some(deadpool_postgres::PoolConfig {
        max_size: max.max(1),
        timeouts: deadpool_postgres::Timeouts {
            wait: Some(limit),
            create: Some(limit),
            recycle: Some(limit),
        },
        ..Default::default()
    });
    cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )
    .map_err(|e| error::other("connect", "pool", e))
}

impl InstanceStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn put(&self, kind: FileKind, id: &InstanceId, parts: &[&[u8]]) -> Result<()> {
        self.put_with(kind, id, parts, |_| Box::pin(async { Ok(()) }))
    }

    fn read(&self, kind: FileKind, id: &InstanceId) -> Result<Vec<u8>> {
        self.fetch("read", kind, id).map(|(_, bytes)| bytes)
    }

    fn local_file(&self, kind: FileKind, id: &InstanceId) -> Result<PathBuf> {
        let meta = self
            .meta("local file", kind, id)?
            .ok_or_else(|| error::not_found(kind, id))?;
        if let Some(path) = self.scratch.get(kind, id, meta.object_id, meta.bytes) {
            return Ok(path);
        }
        let (meta, bytes) = self.fetch("local file", kind, id)?;
        self.scratch.write(kind, id, meta.object_id, &[&bytes])
    }

    fn contains(&self, kind: FileKind, id: &InstanceId) -> Result<bool> {
        Ok(self.meta("contains", kind, id)?.is_some())
    }

    fn stat(&self, kind: FileKind, id: &InstanceId) -> Result<FileStat> {
        let meta = self
            .meta("stat", kind, id)?
            .ok_or_else(|| error::not_found(kind, id))?;
        Ok(FileStat {
            bytes: meta.bytes,
            modified: meta.created_at,
        })
    }

    fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> Result<()> {
        let key = id.as_str().to_string();
        let gone = self.write_tx("remove", &target(kind, id), move |tx| {
            Box::pin(async move { sql::delete_live(tx, &key, Some(kind)).await })
        })?;
        for (_, object_id) in gone {
            self.scratch.discard(kind, id, object_id);
        }
        Ok(())
    }

    fn remove(&self, id: &InstanceId) -> Result<()> {
        let key = id.as_str().to_string();
        let gone = self.write_tx("remove", id.as_str(), move |tx| {
            Box::pin(async move { sql::delete_live(tx, &key, None).await })
        })?;
        for (code, object_id) in gone {
            if let Some(kind) = FileKind::ALL
                .into_iter()
                .find(|k| sql::kind_code(*k) == code)
            {
                self.scratch.discard(kind, id, object_id);
            }
        }
        Ok(())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<InstanceId>> {
        let rows = self.run("list", kind.dir_name(), async {
            let client = self.client("list", kind.dir_name()).await?;
            client
                .query(
                    "SELECT instance_id FROM instance_objects \
                     WHERE kind = $1 AND quarantined_at IS NULL ORDER BY instance_id",
                    &[&sql::kind_code(kind)],
                )
                .await
                .map_err(|e| error::db("list", kind.dir_name(), e))
        })?;
        let mut ids: Vec<InstanceId> = rows
            .iter()
            .filter_map(|r| r.get::<_, &str>(0).parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn quarantine(&self, kind: FileKind, id: &InstanceId) -> Result<String> {
        let key = id.as_str().to_string();
        let moved = self.write_tx("quarantine", &target(kind, id), move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        "UPDATE instance_objects SET quarantined_at = clock_timestamp() \
                         WHERE instance_id = $1 AND kind = $2 AND quarantined_at IS NULL \
                         RETURNING object_id",
                        &[&key, &sql::kind_code(kind)],
                    )
                    .await?;
                Ok(row.map(|r| r.get::<_, i64>(0)))
            })
        })?;
        let object_id = moved.ok_or_else(|| error::not_found(kind, id))?;
        self.scratch.discard(kind, id, object_id);
        Ok(format!(
            "postgres instance_objects object_id {object_id} (quarantined_at set)"
        ))
    }

    fn free_bytes(&self) -> Result<u64> {
        self.scratch.free_bytes()
    }

    fn usage(&self) -> Result<Usage> {
        self.run("usage", "instance_objects", async {
            let client = self.client("usage", "instance_objects").await?;
            let row = client
                .query_one(
                    "SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM instance_objects \
                     WHERE quarantined_at IS NULL",
                    &[],
                )
                .await
                .map_err(|e| error::db("usage", "instance_objects", e))?;
            Ok(Usage {
                files: row.get::<_, i64>(0).max(0) as u64,
                bytes: row.get::<_, i64>(1).max(0) as u64,
            })
        })
    }

    fn check_ready(&self) -> Result<()> {
        self.run("check", "connection", async {
            let client = self.client("check", "connection").await?;
            client
                .execute("SELECT 1 FROM instance_objects LIMIT 0", &[])
                .await
                .map(|_| ())
                .map_err(|e| error::db("check", "instance_objects", e))
        })?;
        self.scratch.probe()
    }
}

//! PostgreSQL-specific behaviour of the store: one transaction with the caller's rows, nodes
//! sharing one database, scratch copies that never go stale, large objects freed on delete,
//! and a server that goes away and comes back.

use std::time::{Duration, Instant};

use radroute_spool::{suite::pattern, FileKind, InstanceId, InstanceStore, SpoolError};
use radroute_store_postgres::{Layout, PgStore, PgStoreOptions};
use radroute_testkit::postgres::PgServer;

fn options(dir: &tempfile::TempDir, name: &str, layout: Layout) -> PgStoreOptions {
    let mut o = PgStoreOptions::new(dir.path().join(name));
    o.layout = layout;
    o
}

/// Two "nodes": two stores with their own scratch directories on one database.
fn two_nodes(layout: Layout) -> (tempfile::TempDir, String, PgStore, PgStore) {
    let url = PgServer::shared().new_database();
    let dir = tempfile::tempdir().unwrap();
    let a = PgStore::connect(&url, 2, options(&dir, "a", layout)).unwrap();
    let b = PgStore::connect(&url, 2, options(&dir, "b", layout)).unwrap();
    (dir, url, a, b)
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[test]
fn caller_rows_commit_with_the_bytes_or_not_at_all() {
    let (_dir, url, store, _) = two_nodes(Layout::Chunks);
    PgServer::shared().psql(
        db_name(&url),
        "CREATE TABLE rows_of_caller (id text PRIMARY KEY)",
    );
    let ok = InstanceId::generate();
    let key = ok.as_str().to_string();
    store
        .put_with(FileKind::Incoming, &ok, &[b"bytes"], move |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO rows_of_caller VALUES ($1)", &[&key])
                    .await?;
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(store.read(FileKind::Incoming, &ok).unwrap(), b"bytes");

    // The caller's step fails (a duplicate row, as a duplicate instance id would): the bytes
    // written before it in the same transaction are rolled back.
    let failed = InstanceId::generate();
    let dup = ok.as_str().to_string();
    let err = store
        .put_with(
            FileKind::Incoming,
            &failed,
            &[&pattern(3 << 20, 5)],
            move |tx| {
                Box::pin(async move {
                    tx.execute("INSERT INTO rows_of_caller VALUES ($1)", &[&dup])
                        .await?;
                    Ok(())
                })
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::Backend {
                op: "put (caller's step)",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!store.contains(FileKind::Incoming, &failed).unwrap());
    let rows = PgServer::shared().psql(
        db_name(&url),
        "SELECT (SELECT count(*) FROM rows_of_caller) || ' ' || \
                (SELECT count(*) FROM instance_objects) || ' ' || \
                (SELECT count(*) FROM instance_chunks)",
    );
    assert_eq!(
        rows, "1 1 1",
        "rows, objects, chunks after the rolled-back put"
    );
}

#[test]
fn another_node_reads_what_one_node_stored_and_its_copy_is_never_stale() {
    for layout in [Layout::Chunks, Layout::LargeObjects] {
        let (_dir, _url, a, b) = two_nodes(layout);
        let id = InstanceId::generate();
        let pixels = pattern(5_000_001, 9);
        a.put(FileKind::Incoming, &id, &[&pixels[..7], &pixels[7..]])
            .unwrap();
        a.put(FileKind::Header, &id, &[b"header v1"]).unwrap();

        // Node b has no copy: it fetches one on first use.
        let file = b.local_file(FileKind::Incoming, &id).unwrap();
        assert!(file.starts_with(b.scratch_dir()));
        assert!(std::fs::read(&file).unwrap() == pixels, "{layout:?}");
        let old_header = b.local_file(FileKind::Header, &id).unwrap();

        // Node a re-processes: b's header copy must not be served any more.
        a.put(FileKind::Header, &id, &[b"header v2"]).unwrap();
        let header = b.local_file(FileKind::Header, &id).unwrap();
        assert_ne!(header, old_header);
        assert_eq!(std::fs::read(&header).unwrap(), b"header v2");

        // Node a purges: b no longer finds the instance, and its sweep drops its copies.
        a.remove(&id).unwrap();
        assert!(matches!(
            b.local_file(FileKind::Incoming, &id),
            Err(SpoolError::NotFound { .. })
        ));
        assert!(b.sweep_scratch().unwrap() >= 2, "{layout:?}");
        assert!(!file.exists() && !header.exists() && !old_header.exists());
        assert_eq!(a.sweep_scratch().unwrap(), 0, "a removed its own copies");
    }
}

#[test]
fn deleting_large_objects_unlinks_them() {
    let (_dir, url, store, _) = two_nodes(Layout::LargeObjects);
    let count = || {
        PgServer::shared().psql(
            db_name(&url),
            "SELECT count(*) FROM pg_largeobject_metadata",
        )
    };
    let ids: Vec<InstanceId> = (0..3).map(|_| InstanceId::generate()).collect();
    for id in &ids {
        store
            .put(FileKind::Incoming, id, &[&pattern(300_000, 1)])
            .unwrap();
        store.put(FileKind::Processed, id, &[b"p1"]).unwrap();
        store.put(FileKind::Processed, id, &[b"p2"]).unwrap(); // replaces: unlinks p1
    }
    assert_eq!(count(), "6");
    store.remove_kind(FileKind::Processed, &ids[0]).unwrap();
    assert_eq!(count(), "5");
    for id in &ids {
        store.remove(id).unwrap();
    }
    assert_eq!(
        count(),
        "0",
        "large objects left after remove (vacuumlo needed)"
    );
}

#[test]
fn server_gone_fails_within_the_bound_and_the_pool_reconnects() {
    let server = PgServer::start();
    let url = server.new_database();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&dir, "s", Layout::Chunks);
    o.op_timeout = Duration::from_secs(3);
    let store = PgStore::connect(&url, 2, o).unwrap();
    let kept = InstanceId::generate();
    store.put(FileKind::Incoming, &kept, &[b"before"]).unwrap();

    server.stop();
    let id = InstanceId::generate();
    let t = Instant::now();
    let err = store
        .put(FileKind::Incoming, &id, &[b"during"])
        .unwrap_err();
    assert!(matches!(err, SpoolError::Backend { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(store.check_ready().is_err());
    assert!(store.read(FileKind::Incoming, &kept).is_err());

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.put(FileKind::Incoming, &id, &[b"after"]) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("store did not reconnect: {e}"),
        }
    }
    store.check_ready().unwrap();
    assert_eq!(store.read(FileKind::Incoming, &kept).unwrap(), b"before");
    assert_eq!(store.read(FileKind::Incoming, &id).unwrap(), b"after");
}

#[test]
fn migrations_are_idempotent_and_recorded() {
    let (_dir, url, _a, _b) = two_nodes(Layout::Chunks);
    // Both stores migrated the same database; each migration is recorded once.
    let applied =
        PgServer::shared().psql(db_name(&url), "SELECT count(*) FROM radroute_store_schema");
    assert_eq!(applied, "1");
}

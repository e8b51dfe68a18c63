//! Instance storage through the `InstanceStore` trait: local files vs PostgreSQL (chunk rows
//! and large objects), and what deletion at volume costs PostgreSQL (size, WAL, VACUUM).
//!
//! Run with `tests/bench/pg_storage.sh` (or `cargo bench -p radroute-store-postgres --bench
//! pg_storage`). Environment: `BENCH_MB` (instance size, default 10), `BENCH_BATCH` (instances
//! per round, default 20), `BENCH_ROUNDS` (default 5), `BENCH_VOLUME` (instances of the
//! deletion test, default 500; 0 skips it), `BENCH_PG_SETTINGS` (`key=value ...` applied with
//! `ALTER SYSTEM` before the run). PostgreSQL runs with its durable defaults
//! (`fsync=on`, `synchronous_commit=on`, `full_page_writes=on`), in a temporary directory on
//! the same file system as the local spool.

use std::time::{Duration, Instant};

use radroute_spool::{FileKind, InstanceId, InstanceStore, Spool};
use radroute_store_postgres::{Layout, PgStore, PgStoreOptions};
use radroute_testkit::postgres::{PgOptions, PgServer};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Incompressible bytes (xorshift), like the noisy low bits of real pixel data.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Puts `batch` instances of `data` with `threads` threads; returns the ids and the seconds.
fn put_batch(
    store: &dyn InstanceStore,
    data: &[u8],
    batch: usize,
    threads: usize,
) -> (Vec<InstanceId>, f64) {
    let ids: Vec<InstanceId> = (0..batch).map(|_| InstanceId::generate()).collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in ids.chunks(batch.div_ceil(threads)) {
            s.spawn(move || {
                for id in part {
                    // The receive path's shape: file meta then the data set.
                    store
                        .put(FileKind::Incoming, id, &[&data[..132], &data[132..]])
                        .expect("put");
                }
            });
        }
    });
    (ids, t.elapsed().as_secs_f64())
}

struct Row {
    backend: &'static str,
    threads: usize,
    put_per_s: f64,
    put_mb_s: f64,
    read_ms: f64,
    fetch_ms: f64,
}

fn throughput(
    name: &'static str,
    store: &dyn InstanceStore,
    other_node: Option<&PgStore>,
    data: &[u8],
    batch: usize,
    rounds: usize,
) -> Vec<Row> {
    let mb = data.len() as f64 / 1e6;
    let mut rows = Vec::new();
    for threads in [1, 4] {
        let (mut puts, mut reads, mut fetches) = (Vec::new(), Vec::new(), Vec::new());
        // One warm-up round, not counted.
        let (ids, _) = put_batch(store, data, batch, threads);
        for id in &ids {
            store.remove(id).expect("remove");
        }
        for _ in 0..rounds {
            let (ids, secs) = put_batch(store, data, batch, threads);
            puts.push(batch as f64 / secs);
            let t = Instant::now();
            for id in &ids {
                assert_eq!(
                    store.read(FileKind::Incoming, id).expect("read").len(),
                    data.len()
                );
            }
            reads.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
            if let Some(other) = other_node {
                // Another node's first use: fetched from PostgreSQL into its scratch directory.
                let t = Instant::now();
                for id in &ids {
                    other.local_file(FileKind::Incoming, id).expect("fetch");
                }
                fetches.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
            }
            for id in &ids {
                store.remove(id).expect("remove");
            }
            if let Some(other) = other_node {
                other.sweep_scratch().expect("sweep");
            }
        }
        let put = median(puts);
        rows.push(Row {
            backend: name,
            threads,
            put_per_s: put,
            put_mb_s: put * mb,
            read_ms: median(reads),
            fetch_ms: if fetches.is_empty() {
                f64::NAN
            } else {
                median(fetches)
            },
        });
    }
    rows
}

fn pg_store(url: &str, scratch: &std::path::Path, layout: Layout) -> PgStore {
    let mut o = PgStoreOptions::new(scratch);
    o.layout = layout;
    o.op_timeout = Duration::from_secs(120);
    PgStore::connect(url, 4, o).expect("connect")
}

/// Sizes in MB and the WAL position, read with psql.
struct Sizes {
    table_mb: f64,
    wal: String,
}

fn sizes(server: &PgServer, db: &str, layout: Layout) -> Sizes {
    let rel = match layout {
        Layout::Chunks => "pg_total_relation_size('instance_chunks') + pg_total_relation_size('instance_objects')",
        Layout::LargeObjects => "pg_total_relation_size('pg_largeobject') + pg_total_relation_size('pg_largeobject_metadata') + pg_total_relation_size('instance_objects')",
    };
    let out = server.psql(
        db,
        &format!("SELECT ({rel}) || ' ' || pg_current_wal_insert_lsn()"),
    );
    let (bytes, wal) = out.split_once(' ').expect("psql output");
    Sizes {
        table_mb: bytes.parse::<f64>().expect("size") / 1e6,
        wal: wal.to_string(),
    }
}

fn wal_mb(server: &PgServer, db: &str, from: &Sizes, to: &Sizes) -> f64 {
    server
        .psql(
            db,
            &format!("SELECT pg_wal_lsn_diff('{}', '{}')", to.wal, from.wal),
        )
        .parse::<f64>()
        .expect("wal diff")
        / 1e6
}

fn volume(server: &PgServer, layout: Layout, n: usize, data: &[u8]) {
    let url = server.new_database();
    let db = url.rsplit('/').next().expect("db").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = pg_store(&url, &dir.path().join("scratch"), layout);
    let s0 = sizes(server, &db, layout);
    let (ids, put_s) = put_batch(&store, data, n, 4);
    let s1 = sizes(server, &db, layout);
    // A purge interleaved with newer instances: four of every five go, the fifth stays, so
    // VACUUM cannot simply truncate the table's tail.
    let (gone, kept): (Vec<_>, Vec<_>) = ids.iter().enumerate().partition(|(i, _)| i % 5 != 0);
    let t = Instant::now();
    for (_, id) in &gone {
        store.remove(id).expect("remove");
    }
    let del_s = t.elapsed().as_secs_f64();
    let s2 = sizes(server, &db, layout);
    let vac = match layout {
        Layout::Chunks => "VACUUM (ANALYZE) instance_chunks, instance_objects",
        Layout::LargeObjects => {
            "VACUUM (ANALYZE) pg_largeobject, pg_largeobject_metadata, instance_objects"
        }
    };
    let t = Instant::now();
    server.psql(&db, vac);
    let vac_s = t.elapsed().as_secs_f64();
    let s3 = sizes(server, &db, layout);
    // Space reuse after VACUUM: a fifth of the volume again.
    let (again, _) = put_batch(&store, data, n / 5, 4);
    let s4 = sizes(server, &db, layout);
    for id in again.iter().chain(kept.iter().map(|(_, id)| *id)) {
        store.remove(id).expect("remove");
    }
    let t = Instant::now();
    let full = vac.replace("VACUUM (ANALYZE)", "VACUUM FULL");
    server.psql(&db, &full);
    let full_s = t.elapsed().as_secs_f64();
    let s5 = sizes(server, &db, layout);
    let lo_left = server.psql(&db, "SELECT count(*) FROM pg_largeobject_metadata");
    println!(
        "| {layout:?} | {n} | {:.1} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} (+{:.0} for {}) | {:.1} | {:.0} | {lo_left} |",
        put_s,
        s1.table_mb,
        wal_mb(server, &db, &s0, &s1),
        del_s,
        s2.table_mb,
        wal_mb(server, &db, &s1, &s2),
        vac_s,
        s3.table_mb,
        s4.table_mb,
        s4.table_mb - s3.table_mb,
        n / 5,
        full_s,
        s5.table_mb,
    );
}

fn main() {
    let mb = env("BENCH_MB", 10);
    let batch = env("BENCH_BATCH", 20);
    let rounds = env("BENCH_ROUNDS", 5);
    let n = env("BENCH_VOLUME", 500);
    let data = random_bytes(mb * 1_000_000, 42);

    let server = PgServer::start_with(PgOptions {
        durable: true,
        ..PgOptions::default()
    });
    // BENCH_PG_SETTINGS="wal_buffers=64MB max_wal_size=4GB": server settings to try.
    let settings = std::env::var("BENCH_PG_SETTINGS").unwrap_or_default();
    for setting in settings.split_whitespace() {
        let (key, value) = setting
            .split_once('=')
            .expect("BENCH_PG_SETTINGS: key=value");
        server.psql("postgres", &format!("ALTER SYSTEM SET {key} = '{value}'"));
    }
    if !settings.is_empty() {
        server.stop();
        server.restart();
        println!("PostgreSQL settings: {settings}\n");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    println!("## Store throughput through InstanceStore, {mb} MB instances, {batch} per round, median of {rounds} rounds\n");
    println!("| backend | threads | put instances/s | put MB/s | read ms/instance | other node's first local_file ms/instance |");
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    {
        let spool = Spool::open(&dir.path().join("spool")).expect("spool");
        rows.extend(throughput(
            "local files",
            &spool,
            None,
            &data,
            batch,
            rounds,
        ));
    }
    for (name, layout) in [
        ("postgres chunks", Layout::Chunks),
        ("postgres large objects", Layout::LargeObjects),
    ] {
        let url = server.new_database();
        let a = pg_store(&url, &dir.path().join(format!("{name}-a")), layout);
        let b = pg_store(&url, &dir.path().join(format!("{name}-b")), layout);
        rows.extend(throughput(name, &a, Some(&b), &data, batch, rounds));
    }
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {} |",
            r.backend,
            r.threads,
            r.put_per_s,
            r.put_mb_s,
            r.read_ms,
            if r.fetch_ms.is_nan() {
                "-".to_string()
            } else {
                format!("{:.1}", r.fetch_ms)
            },
        );
    }
    for threads in [1, 4] {
        let local = rows
            .iter()
            .find(|r| r.backend == "local files" && r.threads == threads);
        for r in rows
            .iter()
            .filter(|r| r.backend != "local files" && r.threads == threads)
        {
            if let Some(l) = local {
                println!(
                    "\n{} vs local files, {threads} thread(s): {:.2}x put throughput",
                    r.backend,
                    r.put_per_s / l.put_per_s
                );
            }
        }
    }
    if n > 0 {
        println!("\n## Deletion at volume: {n} x {mb} MB written (4 threads), 80% deleted (every fifth kept), VACUUM, a fifth written again, all deleted, VACUUM FULL\n");
        println!("| layout | instances | write s | size MB | WAL MB (write) | delete 80% s | size after delete MB | WAL MB (delete) | VACUUM s | size after VACUUM MB | size after re-write MB | VACUUM FULL s | size after FULL MB | large objects left |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for layout in [Layout::Chunks, Layout::LargeObjects] {
            volume(&server, layout, n, &data);
        }
    }
}

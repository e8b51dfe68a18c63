//! What one instance costs the forward queue, PostgreSQL vs SQLite: `add_instance` +
//! `route_instance` (one destination) + `lease` + `complete(Delivered)`, with each backend's
//! durability (PostgreSQL fsync on and synchronous_commit on, SQLite WAL with
//! synchronous=FULL), from 1 and 4 threads (4 "forward workers"; with PostgreSQL this is also
//! what 4 nodes on one database look like to the server). Prints a table of medians.
//!
//! `cargo bench -p radroute-queue-pg --bench queue_ops` (env RUNS, INSTANCES to change the size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use radroute_queue::{ForwardQueue, NewInstance, Outcome, RetryPolicy, SqliteQueue, UnixMillis};
use radroute_queue_pg::{PgConfig, PgQueueOptions, PostgresQueue};
use radroute_testkit::postgres::{PgOptions, PgServer};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn inst(id: &str) -> NewInstance {
    NewInstance {
        id: id.to_owned(),
        sop_instance_uid: format!("1.2.826.0.1.3680043.10.1.{id}"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".to_owned(),
        transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
        study_instance_uid: Some("1.2.826.0.1.3680043.10.2".to_owned()),
        calling_ae: "MODALITY".to_owned(),
        called_ae: "RADROUTE".to_owned(),
        peer_addr: "127.0.0.1:40000".to_owned(),
        received_at: UnixMillis::now(),
        bytes: 10_000_000,
    }
}

/// One instance through the queue: record, route, lease, complete.
fn one(q: &dyn ForwardQueue, id: &str, dest: &str) {
    let now = UnixMillis::now();
    q.add_instance(&inst(id)).expect("add");
    q.route_instance(id, Some("chest"), None, &[dest.to_string()], now)
        .expect("route");
    let jobs = q.lease(dest, 1, now).expect("lease");
    assert_eq!(jobs.len(), 1, "lease of {id}");
    q.complete(jobs[0].id, &Outcome::Delivered { status: 0 }, now)
        .expect("complete");
}

/// Instances per second through `threads` threads sharing `q`, `n` instances in all.
fn run(q: Arc<dyn ForwardQueue>, threads: usize, n: usize, tag: &str) -> f64 {
    let per = n / threads;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let q = q.clone();
            let tag = tag.to_string();
            // One destination per thread: each worker leases its own instance back.
            std::thread::spawn(move || {
                for i in 0..per {
                    one(q.as_ref(), &format!("{tag}-{t}-{i}"), &format!("pacs{t}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    (per * threads) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let runs = env_usize("RUNS", 5);
    let n = env_usize("INSTANCES", 400);
    let server = PgServer::start_with(PgOptions {
        durable: true,
        ..PgOptions::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = RetryPolicy::default();
    let sqlite: Arc<dyn ForwardQueue> =
        Arc::new(SqliteQueue::open(&dir.path().join("queue.sqlite"), policy).expect("sqlite"));
    let mut config = PgConfig::new(server.new_database());
    config.statement_timeout = Duration::from_secs(30);
    let pg: Arc<dyn ForwardQueue> =
        Arc::new(PostgresQueue::connect(&config, PgQueueOptions::new("bench")).expect("postgres"));
    // Warm-up: connections, prepared statements, page cache.
    run(sqlite.clone(), 4, 40, "warm");
    run(pg.clone(), 4, 40, "warm");

    println!(
        "queue cost per instance (add + route + lease + complete), {n} instances a run, \
         median of {runs} runs, backends interleaved"
    );
    println!("| backend | threads | instances/s (median) | ms per instance | runs (instances/s) |");
    println!("|---|---:|---:|---:|---|");
    for threads in [1, 4] {
        let mut results: Vec<(&str, Vec<f64>)> = vec![("SQLite", vec![]), ("PostgreSQL", vec![])];
        for r in 0..runs {
            results[0]
                .1
                .push(run(sqlite.clone(), threads, n, &format!("s{threads}-{r}")));
            results[1]
                .1
                .push(run(pg.clone(), threads, n, &format!("p{threads}-{r}")));
        }
        for (name, rates) in results {
            let all = rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ");
            let m = median(rates);
            println!(
                "| {name} | {threads} | {m:.0} | {:.2} | {all} |",
                1000.0 / m * threads as f64
            );
        }
    }
}

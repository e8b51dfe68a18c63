//! What the SQLite group commit buys: N threads (associations) each recording M instances,
//! once through `SqliteQueue::add_instance` (writes that meet share a commit) and once as
//! before it, one transaction and one WAL fsync per write behind the same kind of mutex.
//! Same database settings (WAL, `synchronous=FULL`), same statement, same disk.
//!
//! `cargo run --release -p radroute-queue --example group_commit_probe -- [DIR] [THREADS] [EACH] [REPS]`
//! (defaults: a temporary directory under /tmp, 8, 50, 5). Prints writes/s and per-call
//! latency (p50/p99) per repetition and the medians.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radroute_queue::{ForwardQueue, NewInstance, RetryPolicy, SqliteQueue, UnixMillis};

fn inst(id: String) -> NewInstance {
    NewInstance {
        sop_instance_uid: format!("1.2.3.{id}"),
        id,
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".to_owned(),
        transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
        study_instance_uid: Some("1.2.3.9".to_owned()),
        calling_ae: "MODALITY".to_owned(),
        called_ae: "RADROUTE".to_owned(),
        peer_addr: "127.0.0.1:40000".to_owned(),
        received_at: UnixMillis::now(),
        bytes: 10_000_000,
    }
}

/// Runs `threads` × `each` calls of `write` and returns (writes/s, p50 ms, p99 ms).
fn run(threads: usize, each: usize, write: Arc<dyn Fn(String) + Send + Sync>) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let write = write.clone();
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let s = Instant::now();
                        write(format!("t{t}-{i:05}"));
                        s.elapsed()
                    })
                    .collect::<Vec<Duration>>()
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread"))
        .collect();
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    let ms = |q: usize| lat[(lat.len() - 1) * q / 100].as_secs_f64() * 1000.0;
    ((threads * each) as f64 / secs, ms(50), ms(99))
}

fn open(dir: &Path, name: &str) -> SqliteQueue {
    let _ = std::fs::remove_file(dir.join(name));
    let policy = RetryPolicy {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        max_attempts: 5,
    };
    SqliteQueue::open(&dir.join(name), policy).expect("open queue")
}

/// A variant's name and its writes/s, p50 and p99 of every repetition.
type Variant = (&'static str, Vec<f64>, Vec<f64>, Vec<f64>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tmp = tempfile::tempdir_in("/tmp").expect("tempdir");
    let dir = args
        .get(1)
        .map(Path::new)
        .unwrap_or(tmp.path())
        .to_path_buf();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (threads, each, reps) = (arg(2, 8), arg(3, 50), arg(4, 5));
    std::fs::create_dir_all(&dir).expect("database directory");
    println!("{threads} threads x {each} add_instance, {reps} repetitions, database in {dir:?}");
    println!();
    println!("| variant | rep | writes/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut sums: Vec<Variant> = vec![
        ("one commit per write (before)", vec![], vec![], vec![]),
        ("group commit (SqliteQueue)", vec![], vec![], vec![]),
    ];
    for rep in 0..reps {
        // before: the schema of SqliteQueue, written by a plain connection, one autocommit
        // INSERT (one transaction, one fsync) per call, callers serialised by a mutex
        drop(open(&dir, "before.sqlite"));
        let conn = rusqlite::Connection::open(dir.join("before.sqlite")).expect("open");
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .expect("wal");
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .expect("pragmas");
        let conn = Arc::new(Mutex::new(conn));
        let before: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |id| {
            let i = inst(id);
            conn.lock()
                .expect("lock")
                .execute(
                    "INSERT INTO instances (id, sop_instance_uid, sop_class_uid, \
                     transfer_syntax, study_instance_uid, calling_ae, called_ae, peer_addr, \
                     received_at, updated_at, state, bytes) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 'received', ?10)",
                    rusqlite::params![
                        i.id,
                        i.sop_instance_uid,
                        i.sop_class_uid,
                        i.transfer_syntax,
                        i.study_instance_uid,
                        i.calling_ae,
                        i.called_ae,
                        i.peer_addr,
                        i.received_at.0,
                        i.bytes as i64
                    ],
                )
                .expect("insert");
        });
        let q = Arc::new(open(&dir, "group.sqlite"));
        let group: Arc<dyn Fn(String) + Send + Sync> =
            Arc::new(move |id| q.add_instance(&inst(id)).expect("add_instance"));
        for (k, write) in [before, group].into_iter().enumerate() {
            let (wps, p50, p99) = run(threads, each, write);
            println!("| {} | {rep} | {wps:.0} | {p50:.1} | {p99:.1} |", sums[k].0);
            sums[k].1.push(wps);
            sums[k].2.push(p50);
            sums[k].3.push(p99);
        }
    }
    println!();
    println!("| variant (median of {reps}) | writes/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, w, a, b) in sums {
        println!(
            "| {name} | {:.0} | {:.1} | {:.1} |",
            median(w),
            median(a),
            median(b)
        );
    }
}

//! Issue 10, "Liveness", end to end: a forward lease whose outcome was lost is released by the
//! running daemon (the watchdog), and the classifier batches images beyond the number of
//! decode workers. Panics in processing and held studies are covered by the unit tests of
//! crates/85-node/src/process_liveness_tests.rs (they need a labeler that panics and
//! hundreds of held instances).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use radroute_e2e::dcmtk::{run_bounded, storescu};
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, python, Instance};
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

/// Runs one SQL statement on the queue database next to the running daemon (SQLite allows a
/// second writer; it waits for the daemon's lock) and returns the rows, one per line.
fn sql(db: &Path, statement: &str) -> String {
    let mut cmd = Command::new(python());
    cmd.arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], timeout=10)\n\
             rows = c.execute(sys.argv[2]).fetchall()\n\
             c.commit()\n\
             print('\\n'.join('|'.join(str(v) for v in r) for r in rows))",
        )
        .arg(db)
        .arg(statement);
    let (code, out) = run_bounded(cmd, Duration::from_secs(30));
    assert_eq!(code, Some(0), "sqlite3 failed: {out}");
    out.trim().to_string()
}

#[test]
fn the_running_daemon_requeues_a_lease_whose_outcome_was_lost() {
    let dir = radroute_e2e::test_dir("stale-lease");
    let d = dir.path();
    let pacs_port = free_port();
    // One attempt: the job is dead at once while the PACS is down, so no worker holds it.
    let r = Radroute::start(
        d,
        Config {
            max_attempts: 1,
            ..Config::default()
        }
        .destination("pacs", "PACS", pacs_port),
    );
    let file = d.join("in").join("one.dcm");
    let uid = make_instances(&[(&file, Instance::default())]).remove(0);
    let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(&file));
    assert!(
        run.all_ok(std::slice::from_ref(&file)),
        "{}",
        r.context(&run.log)
    );
    let db = r.spool_dir().join("queue.sqlite");
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (sql(&db, "SELECT state FROM jobs") == "dead").then_some(()),
        || r.context("the job did not become a dead letter"),
    );
    // A worker leased it long ago and its completion never came (a worker that died, a lost
    // outcome): in flight since 1970.
    let changed = sql(
        &db,
        "UPDATE jobs SET state = 'in_flight', updated_at = 1 WHERE state = 'dead' RETURNING id",
    );
    assert!(!changed.is_empty(), "no job was put in flight");
    let pacs = StoreScp::start(&d.join("pacs"), "PACS", pacs_port);
    // The watchdog (every 5 s) queues it again; a worker delivers it.
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || pacs.received().contains(&uid).then_some(()),
        || {
            r.context(&format!(
                "the stale lease was never released: job state {:?}",
                sql(&db, "SELECT state, updated_at FROM jobs")
            ))
        },
    );
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (sql(&db, "SELECT state FROM jobs") == "delivered").then_some(()),
        || r.context("the released job was not recorded as delivered"),
    );
    let metrics = r.metrics();
    assert_eq!(
        metric(&metrics, "radroute_queue_stale_released_total", &[]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        r.log().contains("released stale forward leases"),
        "{}",
        r.context("no log line for the release")
    );
}

/// The sizes of the inference batches the daemon logged (`classified batch batch=N`, debug).
fn logged_batches(log: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains("classified batch"))
        .filter_map(|l| {
            let rest = &l[l.find("batch=")? + "batch=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn the_classifier_batches_more_images_than_there_are_decode_workers() {
    const IMAGES: usize = 24;
    const WORKERS: usize = 2;
    let dir = radroute_e2e::test_dir("batching");
    let d = dir.path();
    let files: Vec<PathBuf> = (0..IMAGES)
        .map(|n| d.join("in").join(format!("{n}.dcm")))
        .collect();
    let specs: Vec<(&Path, Instance)> = files
        .iter()
        .map(|f| (f.as_path(), Instance::default()))
        .collect();
    make_instances(&specs);
    // The classify section of the classification tests, with two decode workers and room for
    // a batch of 8 to gather.
    let classify = super::classification::classify_toml("if-empty")
        .replace("workers = 1", &format!("workers = {WORKERS}"))
        + "max_batch = 8\nmax_wait_ms = 200\n";
    let r = Radroute::start_with_env(
        d,
        Config {
            extra: classify,
            ..Config::default()
        },
        &[("RUST_LOG", "info,radroute_classify=debug")],
        None,
    );
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    let batches = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let b = logged_batches(&r.log());
            (b.iter().sum::<usize>() >= IMAGES).then_some(b)
        },
        || r.context(&format!("{IMAGES} images were not all classified")),
    );
    eprintln!("batch sizes: {batches:?}");
    let largest = batches.iter().copied().max().unwrap_or(0);
    assert!(
        largest > WORKERS,
        "the largest inference batch was {largest} with {WORKERS} decode workers and max_batch 8: \
         batches never gather across instances ({batches:?})"
    );
    let metrics = r.metrics();
    assert_eq!(
        metric(&metrics, "radroute_classify_batch_size_sum", &[]),
        Some(IMAGES as f64),
        "{metrics}"
    );
}

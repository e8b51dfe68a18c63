//! The forward-queue contract, one suite run against every backend: SQLite on real database
//! files and PostgreSQL on a real server (radroute-testkit starts one per test binary, one
//! database per test): state machine, backoff, recovery, purge, admin, concurrency. Tests of one
//! backend's specifics (SQLite's file format, PostgreSQL's leases between nodes) follow the suite
//! here and in crates/26-queue-postgres/tests.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{
    ForwardQueue, InstanceState, JobFilter, JobState, NewInstance, Outcome, QueueError, Retention,
    RetryPolicy, SqliteQueue, UnixMillis,
};
use radroute_queue_pg::{PgConfig, PgQueueOptions, PostgresQueue};
use radroute_testkit::postgres::PgServer;

const T0: UnixMillis = UnixMillis(1_795_832_130_000);

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_secs(1),
        max: Duration::from_secs(8),
        max_attempts: 6,
    }
}

fn open(dir: &Path) -> SqliteQueue {
    SqliteQueue::open(&dir.join("queue.sqlite"), policy()).unwrap()
}

/// One empty queue store of a backend; `open` returns a new handle on it (a second handle is
/// another connection, a reopen after a "crash" a new one).
trait Fixture {
    fn open(&self) -> Box<dyn ForwardQueue>;
}

/// A database file in its own temporary directory.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite(tempfile::tempdir().unwrap())
    }
}

impl Fixture for Sqlite {
    fn open(&self) -> Box<dyn ForwardQueue> {
        Box::new(open(self.0.path()))
    }
}

/// A new database on the test binary's PostgreSQL server; every handle is the same node.
struct Postgres(String);

impl Postgres {
    fn new() -> Postgres {
        Postgres(PgServer::shared().new_database())
    }
}

impl Fixture for Postgres {
    fn open(&self) -> Box<dyn ForwardQueue> {
        let mut options = PgQueueOptions::new("node-a");
        options.policy = policy();
        Box::new(PostgresQueue::connect(&PgConfig::new(self.0.clone()), options).unwrap())
    }
}

/// Runs every suite test against one backend, in a module named after it.
macro_rules! suite {
    ($backend:ident, $fixture:expr, [$($test:ident),+ $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test(&$fixture);
                }
            )+
        }
    };
}

macro_rules! every_backend {
    ($($test:ident),+ $(,)?) => {
        suite!(sqlite, super::Sqlite::new(), [$($test),+]);
        suite!(postgres, super::Postgres::new(), [$($test),+]);
    };
}

every_backend!(
    full_state_machine,
    lease_takes_due_jobs_oldest_first_up_to_max,
    higher_priority_jobs_are_leased_first,
    retry_backoff_schedule_then_dead_after_max_attempts,
    permanent_refusal_is_dead_at_once_and_keeps_status,
    in_flight_jobs_are_requeued_after_a_crash,
    routing_errors_are_typed,
    routed_nowhere_is_purged_after_the_retention,
    dropped_and_dead_jobs_are_purged_after_their_retention,
    retry_after_the_files_were_purged_is_refused,
    open_instances_and_failing_the_jobs_of_a_lost_file,
    purge_waits_for_retention_after_last_delivery,
    operator_retry_and_drop,
    counts_listing_and_study_lookup,
    concurrent_leases_never_share_a_job,
    concurrent_writers_all_succeed_and_survive_a_reopen,
    stale_leases_are_released_without_counting_an_attempt,
);

fn at(secs: i64) -> UnixMillis {
    UnixMillis(T0.0 + secs * 1000)
}

fn inst(id: &str, study: Option<&str>, received: UnixMillis) -> NewInstance {
    NewInstance {
        id: id.to_owned(),
        sop_instance_uid: format!("1.2.3.{}", id.len()),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".to_owned(),
        transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
        study_instance_uid: study.map(str::to_owned),
        calling_ae: "MODALITY".to_owned(),
        called_ae: "RADROUTE".to_owned(),
        peer_addr: "10.0.0.7:40000".to_owned(),
        received_at: received,
        bytes: 1234,
    }
}

fn dests(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Adds and routes an instance; returns nothing, jobs are leased by destination.
fn routed(q: &dyn ForwardQueue, id: &str, to: &[&str], now: UnixMillis) {
    q.add_instance(&inst(id, Some("9.9"), now)).unwrap();
    q.route_instance(id, Some("chest"), None, &dests(to), now)
        .unwrap();
}

fn full_state_machine(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    q.add_instance(&inst("a", Some("9.9"), T0)).unwrap();

    let pending = q.pending_processing(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, InstanceState::Received);
    assert_eq!(pending[0].bytes, 1234);

    q.route_instance(
        "a",
        Some("chest"),
        Some("ok"),
        &dests(&["pacs", "ai", "pacs"]),
        at(1),
    )
    .unwrap();
    assert!(q.pending_processing(10).unwrap().is_empty());
    let detail = q.instance("a").unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Routed);
    assert_eq!(detail.instance.label.as_deref(), Some("chest"));
    assert_eq!(detail.jobs.len(), 2, "duplicate destination makes one job");

    let leased = q.lease("pacs", 10, at(1)).unwrap();
    assert_eq!(leased.len(), 1);
    let job = &leased[0];
    assert_eq!(
        (job.instance_id.as_str(), job.destination.as_str()),
        ("a", "pacs")
    );
    assert_eq!(job.attempts, 0);
    assert_eq!(job.transfer_syntax, "1.2.840.10008.1.2.1");
    assert!(
        q.lease("pacs", 10, at(1)).unwrap().is_empty(),
        "in flight is not leased twice"
    );

    let state = q
        .complete(job.id, &Outcome::Delivered { status: 0 }, at(2))
        .unwrap();
    assert_eq!(state, JobState::Delivered);
    assert!(
        q.purgeable(at(100), Retention::default(), 10)
            .unwrap()
            .is_empty(),
        "ai pending"
    );
    assert!(
        matches!(
            q.mark_done("a", at(2)),
            Err(QueueError::InstanceState { .. })
        ),
        "ai still queued"
    );

    let ai = q.lease("ai", 10, at(3)).unwrap();
    q.complete(ai[0].id, &Outcome::Delivered { status: 0xB000 }, at(3))
        .unwrap();
    assert_eq!(
        q.purgeable(at(3), Retention::default(), 10).unwrap(),
        vec!["a".to_string()]
    );
    q.mark_done("a", at(4)).unwrap();
    q.mark_done("a", at(4)).unwrap(); // idempotent
    assert!(q
        .purgeable(at(5), Retention::default(), 10)
        .unwrap()
        .is_empty());

    let counts = q.counts().unwrap();
    assert_eq!(counts.instances.done, 1);
    assert_eq!(counts.jobs.delivered, 2);
    assert_eq!(counts.per_destination["ai"].delivered, 1);
    let detail = q.instance("a").unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Done);
    assert_eq!(detail.jobs[0].destination, "ai");
    assert_eq!(detail.jobs[0].last_status, Some(0xB000));
    assert_eq!(detail.jobs[1].attempts, 1);
}

fn lease_takes_due_jobs_oldest_first_up_to_max(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    for (i, id) in ["i1", "i2", "i3"].iter().enumerate() {
        routed(q, id, &["pacs"], at(i as i64));
    }
    assert!(q.lease("pacs", 0, at(10)).unwrap().is_empty());
    assert!(q.lease("other", 5, at(10)).unwrap().is_empty());
    let first: Vec<_> = q
        .lease("pacs", 2, at(10))
        .unwrap()
        .into_iter()
        .map(|j| j.instance_id)
        .collect();
    assert_eq!(first, ["i1", "i2"]);
    assert_eq!(q.next_due("pacs").unwrap(), Some(at(2)));
    assert_eq!(
        q.lease("pacs", 2, at(1)).unwrap().len(),
        0,
        "i3 not due at t=1"
    );
    assert_eq!(q.lease("pacs", 2, at(2)).unwrap()[0].instance_id, "i3");
    assert_eq!(q.next_due("pacs").unwrap(), None);
}

fn higher_priority_jobs_are_leased_first(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    for (i, (id, priority)) in [("low", -1i8), ("medium", 0), ("high", 1)]
        .iter()
        .enumerate()
    {
        q.add_instance(&inst(id, None, at(i as i64))).unwrap();
        q.route_instance_with_priority(id, None, None, &dests(&["pacs"]), *priority, at(i as i64))
            .unwrap();
    }
    let order: Vec<(String, i8)> = q
        .lease("pacs", 3, at(10))
        .unwrap()
        .into_iter()
        .map(|j| (j.instance_id, j.priority))
        .collect();
    assert_eq!(
        order,
        [
            ("high".to_string(), 1),
            ("medium".to_string(), 0),
            ("low".to_string(), -1)
        ]
    );
}

fn retry_backoff_schedule_then_dead_after_max_attempts(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs"], T0);
    let mut now = T0;
    let mut delays = Vec::new();
    loop {
        let jobs = q.lease("pacs", 1, now).unwrap();
        assert_eq!(jobs.len(), 1, "due at {now:?}");
        let retry = Outcome::Retry {
            error: "association rejected".into(),
            status: None,
        };
        match q.complete(jobs[0].id, &retry, now).unwrap() {
            JobState::Queued => {
                let due = q.next_due("pacs").unwrap().unwrap();
                delays.push((due.0 - now.0) / 1000);
                assert!(q
                    .lease("pacs", 1, UnixMillis(due.0 - 1))
                    .unwrap()
                    .is_empty());
                now = due;
            }
            JobState::Dead => break,
            other => panic!("unexpected {other}"),
        }
    }
    // max_attempts 6: five retries (1, 2, 4, 8, capped 8 s), the sixth failure is final.
    assert_eq!(delays, [1, 2, 4, 8, 8]);
    let dead = q
        .list_jobs(&JobFilter {
            state: Some(JobState::Dead),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 6);
    assert_eq!(dead[0].last_error.as_deref(), Some("association rejected"));
    assert_eq!(q.next_due("pacs").unwrap(), None);
    // The dead letter keeps its files for the dead-letter retention (counted from its death,
    // the sixth attempt at t = 23 s), then they may go.
    let keep = Retention {
        finished: Duration::ZERO,
        dead_letters: Duration::from_secs(1000),
    };
    assert!(q.purgeable(at(1000), keep, 10).unwrap().is_empty());
    assert_eq!(q.purgeable(at(1023), keep, 10).unwrap(), ["a"]);
}

fn permanent_refusal_is_dead_at_once_and_keeps_status(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs"], T0);
    let job = q.lease("pacs", 1, T0).unwrap().remove(0);
    let out = Outcome::Dead {
        error: "SOP class not supported".into(),
        status: Some(0x0122),
    };
    assert_eq!(q.complete(job.id, &out, T0).unwrap(), JobState::Dead);
    let view = &q.instance("a").unwrap().unwrap().jobs[0];
    assert_eq!(
        (view.state, view.last_status, view.attempts),
        (JobState::Dead, Some(0x0122), 1)
    );
    assert!(matches!(
        q.complete(job.id, &Outcome::Delivered { status: 0 }, T0),
        Err(QueueError::JobState {
            state: JobState::Dead,
            ..
        })
    ));
    assert!(matches!(
        q.complete(999, &Outcome::Delivered { status: 0 }, T0),
        Err(QueueError::UnknownJob { job_id: 999 })
    ));
}

fn in_flight_jobs_are_requeued_after_a_crash(f: &dyn Fixture) {
    let leased_id;
    {
        let q = f.open();
        let q = q.as_ref();
        routed(q, "a", &["pacs"], T0);
        routed(q, "b", &["pacs"], T0);
        q.add_instance(&inst("c", None, T0)).unwrap(); // never processed
        let jobs = q.lease("pacs", 1, T0).unwrap();
        leased_id = jobs[0].id;
        // "crash": the queue is dropped with the job in flight.
    }
    let q = f.open();
    assert_eq!(q.counts().unwrap().jobs.in_flight, 1);
    let report = q.recover(at(60)).unwrap();
    assert_eq!(report.requeued_jobs, 1);
    assert_eq!(report.received_instances, 1);
    assert_eq!(q.counts().unwrap().jobs.in_flight, 0);
    assert_eq!(q.pending_processing(10).unwrap()[0].id, "c");

    let jobs = q.lease("pacs", 10, at(60)).unwrap();
    assert_eq!(jobs.len(), 2);
    let again = jobs.iter().find(|j| j.id == leased_id).unwrap();
    assert_eq!(again.attempts, 0, "the interrupted attempt is not counted");
    assert_eq!(q.recover(at(61)).unwrap().requeued_jobs, 2);
}

fn routing_errors_are_typed(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    assert!(matches!(
        q.route_instance("nope", None, None, &dests(&["pacs"]), T0),
        Err(QueueError::UnknownInstance { id }) if id == "nope"
    ));
    routed(q, "a", &["pacs"], T0);
    assert!(matches!(
        q.add_instance(&inst("a", None, T0)),
        Err(QueueError::DuplicateInstance { id }) if id == "a"
    ));
    assert!(matches!(
        q.route_instance("a", None, None, &dests(&["pacs"]), T0),
        Err(QueueError::InstanceState {
            state: InstanceState::Routed,
            ..
        })
    ));
    assert!(matches!(
        q.mark_done("nope", T0),
        Err(QueueError::UnknownInstance { .. })
    ));
}

/// Found #5 of issue 10: an instance routed nowhere used to become `done` at once and was never
/// listed by `purgeable`, so its files stayed forever.
fn routed_nowhere_is_purged_after_the_retention(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    q.add_instance(&inst("a", None, T0)).unwrap();
    q.route_instance("a", None, Some("dropped by rule qa"), &[], at(10))
        .unwrap();
    let detail = q.instance("a").unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Routed);
    assert_eq!(
        detail.instance.processing_note.as_deref(),
        Some("dropped by rule qa")
    );
    assert!(detail.jobs.is_empty());
    assert!(q.pending_processing(10).unwrap().is_empty());
    let keep = Retention {
        finished: Duration::from_secs(60),
        dead_letters: Duration::from_secs(3600),
    };
    assert!(q.purgeable(at(69), keep, 10).unwrap().is_empty());
    assert_eq!(q.purgeable(at(70), keep, 10).unwrap(), ["a"]);
    q.mark_done("a", at(70)).unwrap();
    let detail = q.instance("a").unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Done);
    assert_eq!(
        detail.instance.processing_note.as_deref(),
        Some("dropped by rule qa"),
        "the note stays for the record"
    );
    assert!(q.purgeable(at(1000), keep, 10).unwrap().is_empty());
}

/// Found #5 of issue 10: jobs given up by the operator and dead letters kept their files
/// forever. Operator-dropped jobs count as finished (normal retention); dead letters wait for
/// the dead-letter retention; a queued or in-flight job holds the files.
fn dropped_and_dead_jobs_are_purged_after_their_retention(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    let keep = Retention {
        finished: Duration::from_secs(10),
        dead_letters: Duration::from_secs(100),
    };
    // "dropped": one job dropped by the operator while queued.
    routed(q, "dropped", &["pacs"], T0);
    let job = q.list_jobs(&JobFilter::default()).unwrap()[0].id;
    q.drop_job(job, at(1)).unwrap();
    // "dead": refused by the destination.
    routed(q, "dead", &["ai"], T0);
    let j = q.lease("ai", 1, T0).unwrap().remove(0);
    let refused = Outcome::Dead {
        error: "refused".into(),
        status: Some(0xA900),
    };
    q.complete(j.id, &refused, at(1)).unwrap();
    // "mixed": delivered to pacs at 5, dropped for ai at 1.
    routed(q, "mixed", &["pacs", "ai"], T0);
    let p = q.lease("pacs", 1, T0).unwrap().remove(0);
    q.complete(p.id, &Outcome::Delivered { status: 0 }, at(5))
        .unwrap();
    let a = q.lease("ai", 1, T0).unwrap().remove(0);
    q.drop_job(a.id, at(1)).unwrap(); // dropped while in flight
                                      // "busy": one job still queued holds the files whatever the other did.
    routed(q, "busy", &["pacs", "ai"], T0);
    let b = q.lease("ai", 1, T0).unwrap().remove(0);
    q.complete(b.id, &refused, at(1)).unwrap();

    assert!(q.purgeable(at(10), keep, 10).unwrap().is_empty());
    assert_eq!(q.purgeable(at(11), keep, 10).unwrap(), ["dropped"]);
    assert_eq!(q.purgeable(at(15), keep, 10).unwrap(), ["dropped", "mixed"]);
    assert_eq!(
        q.purgeable(at(101), keep, 10).unwrap(),
        ["dead", "dropped", "mixed"]
    );
    // A job still to send: never purgeable, and mark_done refuses it.
    assert!(matches!(
        q.mark_done("busy", at(1000)),
        Err(QueueError::InstanceState { .. })
    ));
    for id in ["dropped", "dead", "mixed"] {
        q.mark_done(id, at(101)).unwrap();
    }
    assert!(q.purgeable(at(10_000), keep, 10).unwrap().is_empty());
    assert_eq!(q.counts().unwrap().instances.done, 3);
}

/// A retry of a job whose files were purged is refused with a clear error instead of being
/// queued to fail; a bulk retry skips it.
fn retry_after_the_files_were_purged_is_refused(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "gone", &["pacs"], T0);
    routed(q, "kept", &["pacs"], T0);
    let refused = Outcome::Dead {
        error: "refused".into(),
        status: Some(0xA900),
    };
    for j in q.lease("pacs", 10, T0).unwrap() {
        q.complete(j.id, &refused, T0).unwrap();
    }
    let gone_job = q.instance("gone").unwrap().unwrap().jobs[0].id;
    q.mark_done("gone", at(1)).unwrap();
    match q.retry_job(gone_job, at(2)) {
        Err(e @ QueueError::FilesPurged { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("purged") && text.contains("gone"),
                "unclear error: {text}"
            );
        }
        other => panic!("expected FilesPurged, got {other:?}"),
    }
    assert_eq!(q.retry_dead(None, at(2)).unwrap(), 1, "only the kept one");
    assert_eq!(q.lease("pacs", 10, at(2)).unwrap()[0].instance_id, "kept");
    assert_eq!(q.counts().unwrap().jobs.dead, 1);
}

fn open_instances_and_failing_the_jobs_of_a_lost_file(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs", "ai"], T0);
    q.add_instance(&inst("b", None, at(1))).unwrap();
    routed(q, "c", &["pacs"], at(2));
    let c_job = q.lease("pacs", 10, at(2)).unwrap();
    for j in c_job.iter().filter(|j| j.instance_id == "c") {
        q.complete(j.id, &Outcome::Delivered { status: 0 }, at(3))
            .unwrap();
    }
    q.mark_done("c", at(4)).unwrap();
    assert_eq!(
        q.open_instances().unwrap(),
        [
            ("a".to_string(), InstanceState::Routed),
            ("b".to_string(), InstanceState::Received)
        ]
    );
    // a: pacs in flight, ai queued -> both dead with the reason; attempts unchanged.
    assert_eq!(q.fail_jobs("a", "spool file missing", at(5)).unwrap(), 2);
    let jobs = q.instance("a").unwrap().unwrap().jobs;
    assert!(jobs.iter().all(|j| j.state == JobState::Dead
        && j.attempts == 0
        && j.last_error.as_deref() == Some("spool file missing")));
    assert_eq!(q.fail_jobs("a", "again", at(6)).unwrap(), 0);
    assert!(q.lease("ai", 10, at(6)).unwrap().is_empty());
}

/// A queue.sqlite written by the previous release (schema version 2, an instance routed
/// nowhere marked `done` with its files leaked) opens, and the leaked instance is handed to the
/// purger; everything else is unchanged.
#[test]
fn a_database_of_the_previous_release_opens_and_its_leaks_become_purgeable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(PREVIOUS_RELEASE_SCHEMA).unwrap();
        raw.execute_batch(
            "INSERT INTO instances VALUES ('nowhere', '1.1', '1.2', '1.2.840.10008.1.2.1', NULL, \
               'MOD', 'RR', '1.2.3.4:5', 1000, 1000, 'done', NULL, 'dropped by rule x', 10);
             INSERT INTO instances VALUES ('purged', '2.1', '1.2', '1.2.840.10008.1.2.1', NULL, \
               'MOD', 'RR', '1.2.3.4:5', 1000, 2000, 'done', NULL, NULL, 10);
             INSERT INTO instances VALUES ('waiting', '3.1', '1.2', '1.2.840.10008.1.2.1', NULL, \
               'MOD', 'RR', '1.2.3.4:5', 1000, 1000, 'routed', NULL, NULL, 10);
             INSERT INTO jobs (instance_id, destination, state, attempts, next_attempt_at, \
               created_at, updated_at, priority) VALUES ('purged', 'pacs', 'delivered', 1, 1000, \
               1000, 1500, 0), ('waiting', 'pacs', 'queued', 0, 1000, 1000, 1000, 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let q = SqliteQueue::open(&path, policy()).unwrap();
    let state = |id: &str| q.instance(id).unwrap().unwrap().instance.state;
    assert_eq!(state("nowhere"), InstanceState::Routed);
    assert_eq!(state("purged"), InstanceState::Done);
    assert_eq!(state("waiting"), InstanceState::Routed);
    assert_eq!(
        q.purgeable(UnixMillis(5000), Retention::default(), 10)
            .unwrap(),
        ["nowhere"]
    );
    let job = q.lease("pacs", 1, UnixMillis(5000)).unwrap().remove(0);
    assert_eq!((job.instance_id.as_str(), job.priority), ("waiting", 1));
}

/// The schema as the previous release (versions 1 and 2) created it.
const PREVIOUS_RELEASE_SCHEMA: &str = r#"
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
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
"#;

fn purge_waits_for_retention_after_last_delivery(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs"], T0);
    let job = q.lease("pacs", 1, T0).unwrap().remove(0);
    q.complete(job.id, &Outcome::Delivered { status: 0 }, at(10))
        .unwrap();
    let keep = Retention {
        finished: Duration::from_secs(60),
        dead_letters: Duration::ZERO,
    };
    assert!(q.purgeable(at(69), keep, 10).unwrap().is_empty());
    assert_eq!(q.purgeable(at(70), keep, 10).unwrap(), ["a"]);
    assert!(q.purgeable(at(70), keep, 0).unwrap().is_empty());
}

fn operator_retry_and_drop(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs", "ai"], T0);
    routed(q, "b", &["pacs"], T0);
    let dead = Outcome::Dead {
        error: "refused".into(),
        status: Some(0xA900),
    };
    for dest in ["pacs", "ai"] {
        for job in q.lease(dest, 10, T0).unwrap() {
            q.complete(job.id, &dead, T0).unwrap();
        }
    }
    assert_eq!(q.counts().unwrap().jobs.dead, 3);
    assert_eq!(q.retry_dead(Some("ai"), at(1)).unwrap(), 1);
    assert_eq!(q.retry_dead(None, at(1)).unwrap(), 2);
    assert_eq!(q.retry_dead(None, at(1)).unwrap(), 0);
    let jobs = q.lease("pacs", 10, at(1)).unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter().all(|j| j.attempts == 0),
        "retry resets attempts"
    );

    // Delivered jobs cannot be dropped; others become dead with the operator's note.
    q.complete(jobs[0].id, &Outcome::Delivered { status: 0 }, at(2))
        .unwrap();
    assert!(matches!(
        q.drop_job(jobs[0].id, at(2)),
        Err(QueueError::JobState {
            state: JobState::Delivered,
            ..
        })
    ));
    assert!(matches!(
        q.retry_job(jobs[1].id, at(2)),
        Err(QueueError::JobState {
            state: JobState::InFlight,
            ..
        })
    ));
    q.drop_job(jobs[1].id, at(2)).unwrap();
    let view = q
        .list_jobs(&JobFilter {
            state: Some(JobState::Dead),
            destination: Some("pacs".into()),
            limit: 10,
        })
        .unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].last_error.as_deref(), Some("dropped by operator"));
    // The worker's late completion of a dropped job is refused.
    assert!(q
        .complete(jobs[1].id, &Outcome::Delivered { status: 0 }, at(3))
        .is_err());
    q.retry_job(jobs[1].id, at(3)).unwrap();
    assert_eq!(q.next_due("pacs").unwrap(), Some(at(3)));
    assert!(matches!(
        q.drop_job(12345, at(3)),
        Err(QueueError::UnknownJob { .. })
    ));
}

fn counts_listing_and_study_lookup(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs", "ai"], T0);
    routed(q, "b", &["pacs"], at(1));
    q.add_instance(&inst("c", Some("other"), at(2))).unwrap();
    q.lease("ai", 1, T0).unwrap();

    let c = q.counts().unwrap();
    assert_eq!(
        (c.instances.received, c.instances.routed, c.instances.done),
        (1, 2, 0)
    );
    assert_eq!((c.jobs.queued, c.jobs.in_flight), (2, 1));
    assert_eq!(c.per_destination["pacs"].get(JobState::Queued), 2);
    assert_eq!(c.per_destination["ai"].get(JobState::InFlight), 1);

    let all = q.list_jobs(&JobFilter::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let limited = q
        .list_jobs(&JobFilter {
            limit: 1,
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(limited.len(), 1);
    let ai = q
        .list_jobs(&JobFilter {
            destination: Some("ai".into()),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(ai.len(), 1);
    assert_eq!(ai[0].study_instance_uid.as_deref(), Some("9.9"));

    let study = q.study("9.9").unwrap();
    let ids: Vec<_> = study.iter().map(|d| d.instance.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(study[0].jobs.len(), 2);
    assert!(q.study("none").unwrap().is_empty());
    assert!(q.instance("none").unwrap().is_none());
    assert_eq!(
        q.instance("c")
            .unwrap()
            .unwrap()
            .instance
            .study_instance_uid
            .as_deref(),
        Some("other")
    );
}

/// Leases from several threads (one shared queue, and a second connection to the same file)
/// never hand out a job twice, and every job is handed out.
fn concurrent_leases_never_share_a_job(f: &dyn Fixture) {
    let shared: Arc<dyn ForwardQueue> = Arc::from(f.open());
    let other: Arc<dyn ForwardQueue> = Arc::from(f.open());
    const N: usize = 150;
    for i in 0..N {
        routed(shared.as_ref(), &format!("i{i:04}"), &["pacs"], T0);
    }
    let workers: Vec<_> = [shared.clone(), shared.clone(), other.clone()]
        .into_iter()
        .map(|q| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let jobs = q.lease("pacs", 3, T0).unwrap();
                    if jobs.is_empty() {
                        break got;
                    }
                    for j in jobs {
                        q.complete(j.id, &Outcome::Delivered { status: 0 }, T0)
                            .unwrap();
                        got.push(j.id);
                    }
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for w in workers {
        for id in w.join().unwrap() {
            assert!(seen.insert(id), "job {id} leased twice");
        }
    }
    assert_eq!(seen.len(), N);
    assert_eq!(shared.counts().unwrap().jobs.delivered, N as u64);
}

/// Eight "associations" adding, four "processing workers" routing and four "forward
/// workers" leasing and completing at once, as the daemon does at 8 senders (the SQLite
/// backend commits such writes in groups): every call succeeds, and a new handle (a restart)
/// finds every instance routed and every job delivered.
fn concurrent_writers_all_succeed_and_survive_a_reopen(f: &dyn Fixture) {
    const SENDERS: usize = 8;
    const EACH: usize = 25;
    let q: Arc<dyn ForwardQueue> = Arc::from(f.open());
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    q.add_instance(&inst(&format!("s{s}-{i:03}"), Some("9.9"), T0))
                        .unwrap();
                }
            })
        })
        .collect();
    let total_routed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let routers: Vec<_> = (0..4)
        .map(|w| {
            let (q, total) = (q.clone(), total_routed.clone());
            std::thread::spawn(move || {
                use std::sync::atomic::Ordering::SeqCst;
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let mut routed = 0;
                while total.load(SeqCst) < SENDERS * EACH {
                    assert!(std::time::Instant::now() < deadline, "routing stalled");
                    let pending = q.pending_processing(SENDERS * EACH).unwrap();
                    for p in pending.iter().skip(w).step_by(4) {
                        match q.route_instance(&p.id, Some("chest"), None, &dests(&["pacs"]), T0) {
                            Ok(()) => {
                                routed += 1;
                                total.fetch_add(1, SeqCst);
                            }
                            // another worker routed it between the listing and this call
                            Err(QueueError::InstanceState { .. }) => {}
                            Err(e) => panic!("route {}: {e}", p.id),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                routed
            })
        })
        .collect();
    let forwarders: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let mut done = 0;
                loop {
                    let jobs = q.lease("pacs", 4, T0).unwrap();
                    for j in &jobs {
                        q.complete(j.id, &Outcome::Delivered { status: 0 }, T0)
                            .unwrap();
                    }
                    done += jobs.len();
                    if q.counts().unwrap().jobs.delivered == (SENDERS * EACH) as u64 {
                        break done;
                    }
                    assert!(std::time::Instant::now() < deadline, "forwarding stalled");
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let routed: usize = routers.into_iter().map(|r| r.join().unwrap()).sum();
    let delivered: usize = forwarders.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(routed, SENDERS * EACH);
    assert_eq!(delivered, SENDERS * EACH);
    drop(q);
    let q = f.open();
    let c = q.counts().unwrap();
    assert_eq!(c.jobs.delivered, (SENDERS * EACH) as u64);
    assert_eq!(q.pending_processing(10).unwrap().len(), 0);
    assert_eq!(q.open_instances().unwrap().len(), SENDERS * EACH);
}

#[test]
fn schema_is_versioned_and_durable_settings_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    {
        let q = SqliteQueue::open(&path, policy()).unwrap();
        routed(&q, "a", &["pacs"], T0);
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, radroute_queue::sqlite::schema::SCHEMA_VERSION);

    // Reopening keeps the data and does not re-run migrations.
    let q = SqliteQueue::open(&path, policy()).unwrap();
    assert_eq!(q.counts().unwrap().jobs.queued, 1);
    drop(q);

    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match SqliteQueue::open(&path, policy()) {
        Err(QueueError::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

fn stale_leases_are_released_without_counting_an_attempt(f: &dyn Fixture) {
    let q = f.open();
    let q = q.as_ref();
    routed(q, "a", &["pacs"], T0);
    routed(q, "b", &["pacs"], T0);
    let old = q.lease("pacs", 1, at(0)).unwrap().remove(0);
    let fresh = q.lease("pacs", 1, at(100)).unwrap().remove(0);
    assert_eq!(q.release_stale(at(50), at(120)).unwrap(), 1);
    let again = q.lease("pacs", 10, at(120)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (old.id, 0));
    // The recent lease was left alone and completes normally.
    q.complete(fresh.id, &Outcome::Delivered { status: 0 }, at(121))
        .unwrap();
    assert_eq!(q.release_stale(at(50), at(122)).unwrap(), 0);
}

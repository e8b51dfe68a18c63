//! The SQLite queue on real database files: state machine, backoff, recovery, purge, admin,
//! concurrency.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{
    ForwardQueue, InstanceState, JobFilter, JobState, NewInstance, Outcome, QueueError,
    RetryPolicy, SqliteQueue, UnixMillis,
};

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

#[test]
fn full_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
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
        q.purgeable(at(100), Duration::ZERO, 10).unwrap().is_empty(),
        "ai pending"
    );
    assert!(matches!(
        q.mark_done("a", at(2)),
        Err(QueueError::InstanceState { .. })
    ));

    let ai = q.lease("ai", 10, at(3)).unwrap();
    q.complete(ai[0].id, &Outcome::Delivered { status: 0xB000 }, at(3))
        .unwrap();
    assert_eq!(
        q.purgeable(at(3), Duration::ZERO, 10).unwrap(),
        vec!["a".to_string()]
    );
    q.mark_done("a", at(4)).unwrap();
    q.mark_done("a", at(4)).unwrap(); // idempotent
    assert!(q.purgeable(at(5), Duration::ZERO, 10).unwrap().is_empty());

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

#[test]
fn lease_takes_due_jobs_oldest_first_up_to_max() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    for (i, id) in ["i1", "i2", "i3"].iter().enumerate() {
        routed(&q, id, &["pacs"], at(i as i64));
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

#[test]
fn higher_priority_jobs_are_leased_first() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
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

#[test]
fn retry_backoff_schedule_then_dead_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs"], T0);
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
    assert!(q
        .purgeable(at(1000), Duration::ZERO, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn permanent_refusal_is_dead_at_once_and_keeps_status() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs"], T0);
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

#[test]
fn in_flight_jobs_are_requeued_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let leased_id;
    {
        let q = open(dir.path());
        routed(&q, "a", &["pacs"], T0);
        routed(&q, "b", &["pacs"], T0);
        q.add_instance(&inst("c", None, T0)).unwrap(); // never processed
        let jobs = q.lease("pacs", 1, T0).unwrap();
        leased_id = jobs[0].id;
        // "crash": the queue is dropped with the job in flight.
    }
    let q = open(dir.path());
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

#[test]
fn routing_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    assert!(matches!(
        q.route_instance("nope", None, None, &dests(&["pacs"]), T0),
        Err(QueueError::UnknownInstance { id }) if id == "nope"
    ));
    routed(&q, "a", &["pacs"], T0);
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

#[test]
fn routed_nowhere_is_done_kept_and_never_purgeable() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    q.add_instance(&inst("a", None, T0)).unwrap();
    q.route_instance("a", None, Some("no rule matched"), &[], T0)
        .unwrap();
    let detail = q.instance("a").unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Done);
    assert_eq!(
        detail.instance.processing_note.as_deref(),
        Some("no rule matched")
    );
    assert!(detail.jobs.is_empty());
    assert!(q.purgeable(at(100), Duration::ZERO, 10).unwrap().is_empty());
    assert!(q.pending_processing(10).unwrap().is_empty());
}

#[test]
fn purge_waits_for_retention_after_last_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs"], T0);
    let job = q.lease("pacs", 1, T0).unwrap().remove(0);
    q.complete(job.id, &Outcome::Delivered { status: 0 }, at(10))
        .unwrap();
    let keep = Duration::from_secs(60);
    assert!(q.purgeable(at(69), keep, 10).unwrap().is_empty());
    assert_eq!(q.purgeable(at(70), keep, 10).unwrap(), ["a"]);
    assert!(q.purgeable(at(70), keep, 0).unwrap().is_empty());
}

#[test]
fn operator_retry_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs", "ai"], T0);
    routed(&q, "b", &["pacs"], T0);
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

#[test]
fn counts_listing_and_study_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs", "ai"], T0);
    routed(&q, "b", &["pacs"], at(1));
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
#[test]
fn concurrent_leases_never_share_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let shared: Arc<dyn ForwardQueue> = Arc::new(open(dir.path()));
    let other: Arc<dyn ForwardQueue> = Arc::new(open(dir.path()));
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

#[test]
fn stale_leases_are_released_without_counting_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    routed(&q, "a", &["pacs"], T0);
    routed(&q, "b", &["pacs"], T0);
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

//! What only the PostgreSQL backend promises: several nodes on one database (exclusive leases,
//! takeover of a dead node's leases and received instances, fenced completion, own-lease
//! recovery, drain), migrations run by several nodes at once, and connection loss (every call
//! fails in bounded time with `Unavailable`, then the pool reconnects by itself).
//! The backend-independent contract is crates/25-queue/tests/queue.rs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use radroute_queue::{ForwardQueue, JobState, NewInstance, Outcome, QueueError, UnixMillis};
use radroute_queue_pg::{PgConfig, PgQueueOptions, PostgresQueue};
use radroute_testkit::postgres::PgServer;

const T0: UnixMillis = UnixMillis(1_795_832_130_000);

fn at(secs: i64) -> UnixMillis {
    UnixMillis(T0.0 + secs * 1000)
}

fn node(url: &str, id: &str) -> PostgresQueue {
    let mut options = PgQueueOptions::new(id);
    options.lease_ttl = Duration::from_secs(60);
    options.takeover_after = Duration::from_secs(30);
    PostgresQueue::connect(&PgConfig::new(url), options).unwrap()
}

fn inst(id: &str, received: UnixMillis) -> NewInstance {
    NewInstance {
        id: id.to_owned(),
        sop_instance_uid: format!("1.2.3.{id}"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".to_owned(),
        transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
        study_instance_uid: Some("9.9".to_owned()),
        calling_ae: "MODALITY".to_owned(),
        called_ae: "RADROUTE".to_owned(),
        peer_addr: "10.0.0.7:40000".to_owned(),
        received_at: received,
        bytes: 1234,
    }
}

fn routed(q: &dyn ForwardQueue, id: &str, now: UnixMillis) {
    q.add_instance(&inst(id, now)).unwrap();
    q.route_instance(id, Some("chest"), None, &["pacs".to_string()], now)
        .unwrap();
}

/// Two nodes, two workers each, lease the same destination until it is empty: no job is
/// handed out twice and every job is delivered once.
#[test]
fn two_nodes_never_get_the_same_job() {
    let url = PgServer::shared().new_database();
    let a: Arc<dyn ForwardQueue> = Arc::new(node(&url, "node-a"));
    let b: Arc<dyn ForwardQueue> = Arc::new(node(&url, "node-b"));
    const N: usize = 200;
    for i in 0..N {
        routed(a.as_ref(), &format!("i{i:04}"), T0);
    }
    let workers: Vec<_> = [a.clone(), a.clone(), b.clone(), b.clone()]
        .into_iter()
        .map(|q| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let jobs = q.lease("pacs", 4, T0).unwrap();
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
    let counts = b.counts().unwrap();
    assert_eq!((counts.jobs.delivered, counts.jobs.queued), (N as u64, 0));
}

/// Node A leases a job and stops heartbeating. While A is alive B leaves the lease alone;
/// `takeover_after` (30 s) after A's last heartbeat B's watchdog requeues it, B sends it, and
/// A's late outcome is refused.
#[test]
fn a_dead_nodes_lease_is_taken_over_and_its_late_outcome_refused() {
    let url = PgServer::shared().new_database();
    let a = node(&url, "node-a");
    let b = node(&url, "node-b");
    a.heartbeat(T0).unwrap();
    b.heartbeat(T0).unwrap();
    routed(&a, "x", T0);
    let job = a.lease("pacs", 1, T0).unwrap().remove(0);
    assert_eq!(a.leases_by_node().unwrap()["node-a"], 1);

    // A heartbeats at 20 s, then dies. `leased_before` far in the past: only liveness counts.
    a.heartbeat(at(20)).unwrap();
    for t in [25, 40, 50] {
        b.heartbeat(at(t)).unwrap();
        assert_eq!(
            b.release_stale(UnixMillis(0), at(t)).unwrap(),
            0,
            "A is alive at {t} s"
        );
    }
    assert!(b.lease("pacs", 1, at(50)).unwrap().is_empty());
    b.heartbeat(at(51)).unwrap();
    assert_eq!(b.release_stale(UnixMillis(0), at(51)).unwrap(), 1);
    let taken = b.lease("pacs", 1, at(51)).unwrap().remove(0);
    assert_eq!(
        (taken.id, taken.attempts),
        (job.id, 0),
        "attempt not counted"
    );
    assert_eq!(b.leases_by_node().unwrap().get("node-b"), Some(&1));

    // A wakes up and reports its outcome: refused, the job is B's now.
    match a.complete(job.id, &Outcome::Delivered { status: 0 }, at(52)) {
        Err(QueueError::JobState {
            state: JobState::InFlight,
            op,
            ..
        }) => assert!(op.contains("taken over"), "{op}"),
        other => panic!("expected a refused completion, got {other:?}"),
    }
    assert_eq!(
        b.complete(taken.id, &Outcome::Delivered { status: 0 }, at(53))
            .unwrap(),
        JobState::Delivered
    );
    // A node's own leases are never taken by the liveness rule (it has no heartbeat row
    // of its own in a single-node setup).
    let c = node(&url, "node-c");
    routed(&c, "y", at(60));
    c.lease("pacs", 1, at(60)).unwrap();
    assert_eq!(c.release_stale(UnixMillis(0), at(61)).unwrap(), 0);
}

/// A node that leaves (state `left`) loses its leases at once.
#[test]
fn a_node_that_left_loses_its_leases_at_once() {
    let server = PgServer::shared();
    let url = server.new_database();
    let a = node(&url, "node-a");
    let b = node(&url, "node-b");
    a.heartbeat(T0).unwrap();
    routed(&a, "x", T0);
    a.lease("pacs", 1, T0).unwrap();
    let db = url.rsplit('/').next().unwrap_or_default();
    server.psql(
        db,
        "UPDATE nodes SET state = 'left' WHERE node_id = 'node-a'",
    );
    assert_eq!(b.release_stale(UnixMillis(0), at(1)).unwrap(), 1);
}

/// Leases expire unless renewed; renewal only extends leases the node still holds.
#[test]
fn leases_expire_unless_renewed() {
    let url = PgServer::shared().new_database();
    let a = node(&url, "node-a");
    routed(&a, "x", T0);
    routed(&a, "y", T0);
    let jobs = a.lease("pacs", 2, T0).unwrap();
    let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
    // Lease TTL 60 s: renew one at 50 s (now expires at 110 s).
    assert_eq!(a.renew(&ids[..1], at(50)).unwrap(), 1);
    assert_eq!(a.release_stale(UnixMillis(0), at(59)).unwrap(), 0);
    assert_eq!(
        a.release_stale(UnixMillis(0), at(60)).unwrap(),
        1,
        "unrenewed lease expired"
    );
    assert_eq!(a.release_stale(UnixMillis(0), at(109)).unwrap(), 0);
    assert_eq!(a.release_stale(UnixMillis(0), at(110)).unwrap(), 1);
    // Both are queued again: renewing them is refused (nothing held).
    assert_eq!(a.renew(&ids, at(111)).unwrap(), 0);
    // The watchdog limit applies to renewed leases from their renewal.
    let again = a.lease("pacs", 2, at(120)).unwrap();
    a.renew(&[again[0].id], at(130)).unwrap();
    assert_eq!(a.release_stale(at(125), at(131)).unwrap(), 1);
}

/// Start-up recovery requeues this node's own leases, never a live peer's; a draining node
/// hands its leases back.
#[test]
fn recovery_and_drain_touch_only_own_leases() {
    let url = PgServer::shared().new_database();
    let a = node(&url, "node-a");
    let b = node(&url, "node-b");
    for id in ["x", "y", "z"] {
        routed(&a, id, T0);
    }
    a.lease("pacs", 1, T0).unwrap();
    b.lease("pacs", 1, T0).unwrap();
    a.add_instance(&inst("unprocessed", T0)).unwrap();
    let report = b.recover(at(1)).unwrap();
    assert_eq!((report.requeued_jobs, report.received_instances), (1, 0));
    assert_eq!(a.leases_by_node().unwrap().get("node-a"), Some(&1));
    assert_eq!(a.recover(at(2)).unwrap().received_instances, 1);
    assert_eq!(a.counts().unwrap().jobs.in_flight, 0);

    b.lease("pacs", 2, at(3)).unwrap();
    a.lease("pacs", 1, at(3)).unwrap();
    assert_eq!(b.hand_back(at(4)).unwrap(), 2);
    assert_eq!(b.counts().unwrap().jobs.in_flight, 1, "A's lease stays");
}

/// Instances received by a node that died before processing them are offered to the others;
/// two nodes routing the same instance route it once.
#[test]
fn received_instances_of_a_dead_node_are_processed_once_by_another() {
    let url = PgServer::shared().new_database();
    let a = node(&url, "node-a");
    let b = node(&url, "node-b");
    let now = UnixMillis::now();
    a.heartbeat(now).unwrap();
    a.add_instance(&inst("r1", now)).unwrap();
    assert_eq!(a.pending_processing(10).unwrap().len(), 1);
    assert!(b.pending_processing(10).unwrap().is_empty(), "A is alive");
    a.heartbeat(now.saturating_sub(Duration::from_secs(31)))
        .unwrap();
    let offered = b.pending_processing(10).unwrap();
    assert_eq!(offered.len(), 1, "A is dead: B processes its instance");

    // Both route it (A came back at the same moment): exactly one wins.
    let dests = vec!["pacs".to_string()];
    let results: Vec<_> = [Arc::new(a), Arc::new(b)]
        .into_iter()
        .map(|q| {
            let dests = dests.clone();
            std::thread::spawn(move || q.route_instance("r1", None, None, &dests, now))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(QueueError::InstanceState { .. }))));
    let q = node(&url, "node-c");
    assert_eq!(q.instance("r1").unwrap().unwrap().jobs.len(), 1);
}

/// Four nodes starting together on an empty database: the migrations run once, all connect.
/// A database migrated by a newer radroute is refused.
#[test]
fn migrations_run_once_under_concurrent_starts_and_refuse_a_newer_schema() {
    let server = PgServer::shared();
    let url = server.new_database();
    let starts: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                PostgresQueue::connect(
                    &PgConfig::new(url),
                    PgQueueOptions::new(format!("node-{i}")),
                )
                .map(|_| ())
            })
        })
        .collect();
    for s in starts {
        s.join().unwrap().unwrap();
    }
    let db = url.rsplit('/').next().unwrap_or_default();
    assert_eq!(
        server.psql(
            db,
            "SELECT COUNT(*), MAX(version) FROM radroute_queue_schema"
        ),
        // Versions 1..=latest, each applied once.
        format!("{n}|{n}", n = radroute_queue_pg::migrate::latest_version())
    );
    server.psql(
        db,
        "INSERT INTO radroute_queue_schema (version, name, applied_on, checksum) \
         VALUES (99, 'future', 'now', '0')",
    );
    match PostgresQueue::connect(&PgConfig::new(url.clone()), PgQueueOptions::new("n")) {
        Err(QueueError::ServerSchemaTooNew {
            found: 99,
            database,
            ..
        }) => assert!(database.ends_with(db), "{database}"),
        other => panic!("expected ServerSchemaTooNew, got {other:?}"),
    }
}

/// PostgreSQL stops: every call fails with `Unavailable` within the call timeout (never a
/// hang or a panic); it comes back: the same queue works again without being rebuilt, and
/// what was committed before is there.
#[test]
fn connection_loss_is_unavailable_in_bounded_time_and_the_pool_reconnects() {
    let server = PgServer::start();
    let url = server.new_database();
    let mut config = PgConfig::new(url);
    config.connect_timeout = Duration::from_secs(1);
    config.statement_timeout = Duration::from_secs(2);
    let limit = config.call_timeout() + Duration::from_secs(1);
    let q = PostgresQueue::connect(&config, PgQueueOptions::new("node-a")).unwrap();
    routed(&q, "before", T0);

    server.stop();
    for i in 0..3 {
        let started = Instant::now();
        let err = q
            .add_instance(&inst(&format!("during{i}"), T0))
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
        let started = Instant::now();
        assert!(q.lease("pacs", 1, T0).unwrap_err().is_unavailable());
        assert!(q.counts().unwrap_err().is_unavailable());
        assert!(
            started.elapsed() < limit * 2,
            "took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match q.add_instance(&inst("after", T0)) {
            Ok(()) => break,
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("the queue did not come back: {e}\n{}", server.log()),
        }
    }
    let counts = q.counts().unwrap();
    assert_eq!(
        (counts.instances.received, counts.instances.routed),
        (1, 1),
        "the instance refused while down was never recorded"
    );
    assert_eq!(q.lease("pacs", 5, T0).unwrap()[0].instance_id, "before");
}

/// A database that cannot be reached at start fails fast with `Unavailable`.
#[test]
fn an_unreachable_database_fails_fast_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut config = PgConfig::new(format!("postgresql://rr:s3cret@127.0.0.1:{port}/x"));
    config.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = PostgresQueue::connect(&config, PgQueueOptions::new("n")).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Every pooled session carries the configured statement timeout: a statement that runs past
/// it is cancelled by the server and reported as `Unavailable`-class trouble, not waited for.
#[test]
fn sessions_carry_the_statement_timeout() {
    let url = PgServer::shared().new_database();
    let mut config = PgConfig::new(url);
    config.statement_timeout = Duration::from_millis(1500);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = config.pool().unwrap();
        let c = pool.get().await.unwrap();
        let row = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "1500ms");
        let started = Instant::now();
        let err = c.execute("SELECT pg_sleep(10)", &[]).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

//! One test suite for every [`StudyState`] backend: in memory (one node) and PostgreSQL 15
//! (radroute-testkit; two nodes on one database).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use radroute_queue::{ForwardQueue, NewInstance, UnixMillis};
use radroute_queue_pg::{PgConfig, PgQueueOptions, PostgresQueue};
use radroute_route::InstanceLabel;
use radroute_testkit::postgres::PgServer;

use super::{Member, MemoryStudies, PgStudies, PgStudiesOptions, StudyState};

const LONG: Duration = Duration::from_secs(3600);

/// A backend under test: the study state as seen by node `a` and node `b`.
struct Backend {
    a: Arc<dyn StudyState>,
    b: Arc<dyn StudyState>,
    /// Makes instance `id` exist where the backend needs it (the queue's `instances`).
    add_instance: Box<dyn Fn(&str)>,
    /// PostgreSQL only: node `a` stops heartbeating (seen dead by `b`).
    kill_a: Option<Box<dyn Fn()>>,
    _keep: Vec<Box<dyn std::any::Any>>,
}

fn memory() -> Backend {
    let shared: Arc<dyn StudyState> = Arc::new(MemoryStudies::default());
    Backend {
        a: shared.clone(),
        b: shared,
        add_instance: Box::new(|_| {}),
        kill_a: None,
        _keep: Vec::new(),
    }
}

fn postgres() -> Backend {
    let url = PgServer::shared().new_database();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pg = PgConfig::new(url);
    let pool = {
        let _enter = runtime.enter();
        pg.pool().expect("pool")
    };
    let node = |id: &str| {
        let q = PostgresQueue::new(
            pool.clone(),
            runtime.handle().clone(),
            &pg,
            PgQueueOptions::new(id),
        )
        .expect("queue");
        q.heartbeat(UnixMillis::now()).expect("heartbeat");
        q
    };
    let (qa, qb) = (node("a"), node("b"));
    runtime
        .block_on(super::migrate(&pool))
        .expect("study migrations");
    // Twice: idempotent.
    runtime
        .block_on(super::migrate(&pool))
        .expect("study migrations again");
    let studies = |id: &str| -> Arc<dyn StudyState> {
        Arc::new(PgStudies::new(
            pool.clone(),
            runtime.handle().clone(),
            PgStudiesOptions {
                node_id: id.into(),
                takeover_after: Duration::from_secs(5),
                lease_ttl: Duration::from_secs(600),
                call_timeout: pg.call_timeout(),
            },
        ))
    };
    let (a, b) = (studies("a"), studies("b"));
    let qa = Arc::new(qa);
    let add = qa.clone();
    let kill_pool = pool.clone();
    let handle = runtime.handle().clone();
    Backend {
        a,
        b,
        add_instance: Box::new(move |id| {
            if add.instance(id).expect("read instance").is_some() {
                return;
            }
            add.add_instance(&NewInstance {
                id: id.into(),
                sop_instance_uid: format!("sop-{id}"),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
                transfer_syntax: "1.2.840.10008.1.2.1".into(),
                study_instance_uid: None,
                calling_ae: "MOD".into(),
                called_ae: "RADROUTE".into(),
                peer_addr: "127.0.0.1:5".into(),
                received_at: UnixMillis::now(),
                bytes: 1,
            })
            .expect("add instance")
        }),
        kill_a: Some(Box::new(move || {
            handle.block_on(async {
                let c = kill_pool.get().await.expect("connection");
                c.execute("UPDATE nodes SET heartbeat_at = 0 WHERE node_id = 'a'", &[])
                    .await
                    .expect("silence a");
            })
        })),
        _keep: vec![Box::new(qa), Box::new(qb), Box::new(runtime)],
    }
}

fn member(b: &Backend, id: &str, study: &str, label: Option<&str>, deferred: &[usize]) -> Member {
    (b.add_instance)(id);
    Member {
        id: id.into(),
        study_instance_uid: study.into(),
        instance: InstanceLabel {
            sop_instance_uid: format!("sop-{id}"),
            label: label.map(String::from),
            confidence: Some(0.9),
        },
        note: Some(format!("note {id}")),
        destinations: vec![format!("dest-{id}")],
        deferred: deferred.to_vec(),
    }
}

fn ids(members: &[Member]) -> HashSet<String> {
    members.iter().map(|m| m.id.clone()).collect()
}

fn set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Instances held on two nodes form one study, taken once with every member; after the
/// finish nothing is held.
fn one_study_across_nodes(b: Backend) {
    let m1 = member(&b, "i1", "s1", Some("HAND"), &[2]);
    let m2 = member(&b, "i2", "s1", None, &[0]);
    let m3 = member(&b, "i3", "s1", Some("HAND"), &[2]);
    let other = member(&b, "i4", "s2", Some("KNEE"), &[0]);
    b.a.hold(m1.clone()).unwrap();
    b.b.hold(m2.clone()).unwrap();
    b.a.hold(m3).unwrap();
    b.b.hold(other).unwrap();
    assert_eq!(b.a.held().unwrap(), set(&["i1", "i2", "i3", "i4"]));
    assert_eq!(b.b.held().unwrap(), set(&["i1", "i2", "i3", "i4"]));
    assert!(b.a.take_stable(LONG).unwrap().is_empty(), "not stable yet");

    let taken = b.b.take_stable(Duration::ZERO).unwrap();
    assert_eq!(taken.len(), 2);
    let s1 = taken
        .iter()
        .find(|t| t.study.study_instance_uid == "s1")
        .expect("s1 taken");
    assert_eq!(ids(&s1.members), set(&["i1", "i2", "i3"]));
    assert_eq!(s1.study.instances.len(), 3);
    assert_eq!(
        s1.study.deferred().iter().copied().collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(s1.study.body_part().label.as_deref(), Some("HAND"));
    let got1 = s1.members.iter().find(|m| m.id == "i1").unwrap();
    assert_eq!(got1, &m1, "a member comes back as it was held");
    // Exclusive: nobody else gets the taken studies.
    assert!(b.a.take_stable(Duration::ZERO).unwrap().is_empty());
    // Still held while being routed.
    assert!(b.a.held().unwrap().contains("i2"));
    for t in &taken {
        b.b.finish(t).unwrap();
    }
    assert!(b.a.held().unwrap().is_empty());
    assert!(b.a.take_stable(Duration::ZERO).unwrap().is_empty());
}

/// An instance held after its study was taken stays held and is the study's next round.
fn late_arrival_starts_a_new_round(b: Backend) {
    b.a.hold(member(&b, "i1", "s1", Some("HAND"), &[0]))
        .unwrap();
    let taken = b.a.take_stable(Duration::ZERO).unwrap();
    assert_eq!(taken.len(), 1);
    b.b.hold(member(&b, "i2", "s1", Some("KNEE"), &[0]))
        .unwrap();
    b.a.finish(&taken[0]).unwrap();
    assert_eq!(b.a.held().unwrap(), set(&["i2"]));
    let next = b.b.take_stable(Duration::ZERO).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(ids(&next[0].members), set(&["i2"]));
    assert_eq!(next[0].study.instances.len(), 1);
    assert_eq!(next[0].study.body_part().label.as_deref(), Some("KNEE"));
    b.b.finish(&next[0]).unwrap();
    assert!(b.b.held().unwrap().is_empty());
}

/// Holding an instance again replaces its entry (a re-processed instance), and restarts its
/// study's stability timer.
fn rehold_replaces(b: Backend) {
    b.a.hold(member(&b, "i1", "s1", None, &[1])).unwrap();
    let mut again = member(&b, "i1", "s1", Some("KNEE"), &[1]);
    again.instance.confidence = Some(0.8);
    b.b.hold(again).unwrap();
    let taken = b.a.take_stable(Duration::ZERO).unwrap();
    let s1 = taken
        .iter()
        .find(|t| t.study.study_instance_uid == "s1")
        .expect("s1");
    assert_eq!(s1.members.len(), 1);
    assert_eq!(s1.study.body_part().label.as_deref(), Some("KNEE"));
    for t in &taken {
        b.a.finish(t).unwrap();
    }
}

/// A node that dies after taking a study leaves a lease that another node takes over, with
/// every member; the dead node's late finish changes nothing.
fn dead_takers_study_is_taken_again(b: Backend) {
    let kill_a = b.kill_a.as_ref().expect("a backend with node liveness");
    b.a.hold(member(&b, "i1", "s1", Some("HAND"), &[0]))
        .unwrap();
    b.b.hold(member(&b, "i2", "s1", Some("HAND"), &[0]))
        .unwrap();
    let taken_by_a = b.a.take_stable(Duration::ZERO).unwrap();
    assert_eq!(taken_by_a.len(), 1);
    assert!(
        b.b.take_stable(Duration::ZERO).unwrap().is_empty(),
        "a's lease holds while a lives"
    );
    kill_a();
    let taken_by_b = b.b.take_stable(Duration::ZERO).unwrap();
    assert_eq!(taken_by_b.len(), 1, "b takes a's study over");
    assert_eq!(ids(&taken_by_b[0].members), set(&["i1", "i2"]));
    // a wakes up and finishes its stale round: fenced by the token.
    b.a.finish(&taken_by_a[0]).unwrap();
    assert_eq!(b.b.held().unwrap(), set(&["i1", "i2"]));
    b.b.finish(&taken_by_b[0]).unwrap();
    assert!(b.b.held().unwrap().is_empty());
}

macro_rules! both {
    ($($name:ident),*) => {
        mod memory_backend {
            $(#[test] fn $name() { super::$name(super::memory()) })*
        }
        mod postgres_backend {
            $(#[test] fn $name() { super::$name(super::postgres()) })*
        }
    };
}

both!(
    one_study_across_nodes,
    late_arrival_starts_a_new_round,
    rehold_replaces
);

#[test]
fn postgres_dead_takers_study_is_taken_again() {
    dead_takers_study_is_taken_again(postgres())
}

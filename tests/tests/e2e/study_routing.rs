//! Issue 5, study stability: a `scope = "study"` route with `study_stable_after_secs = 2` holds
//! the instances of a study sent on two associations until no new instance came for 2 s, then
//! forwards all of them at once, with the study body part (tiny model: two HAND, one abstained
//! → HAND) written to every instance, the abstained one included (`relabel = true`).

use std::time::{Duration, Instant};

use radroute_e2e::dcmtk::{dcmdump, storescu};
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

use crate::classification::classify_toml;

#[test]
fn study_is_forwarded_once_stable_and_relabelled() {
    let dir = radroute_e2e::test_dir("study");
    let d = dir.path();
    let sink = StoreScp::start(&d.join("sink"), "HANGING", free_port());
    let routes = r#"
[routing]
fallback = ["fb"]
study_stable_after_secs = 2

[[routes]]
name = "hand-study"
scope = "study"
when.label = "HAND"
when.min_confidence = 0.5
destinations = ["hanging"]
relabel = true
"#;
    let r = Radroute::start(
        d,
        Config {
            extra: classify_toml("if-empty"),
            routes: Some(routes.into()),
            ..Config::default()
        }
        .destination("hanging", "HANGING", sink.port)
        .destination("fb", "FB", free_port()),
    );
    let study = "1.2.826.0.1.3680043.8.498.5151.1";
    let paths: Vec<_> = ["h1", "h2", "flat"]
        .iter()
        .map(|n| d.join(format!("in/{n}.dcm")))
        .collect();
    let hand = Instance {
        study: Some(study),
        ..Instance::default()
    };
    let flat = Instance {
        study: Some(study),
        pattern: "flat",
        ..Instance::default()
    };
    let uids = make_instances(&[
        (&paths[0], hand.clone()),
        (&paths[1], hand),
        (&paths[2], flat),
    ]);

    // Two associations, less than the stability delay apart.
    let run = storescu("RADROUTE", r.dicom_port, &[], &paths[..2]);
    assert!(run.all_ok(&paths[..2]), "{}", r.context(&run.log));
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        sink.received().is_empty(),
        "{}",
        r.context("forwarded before the study was stable")
    );
    let run = storescu("RADROUTE", r.dicom_port, &[], &paths[2..]);
    assert!(run.all_ok(&paths[2..]), "{}", r.context(&run.log));
    let last_store = Instant::now();

    // Held while the study is not stable: every instance known, none forwarded.
    let held = r.study_instances(study);
    assert_eq!(held.len(), 3, "{held:?}");
    let first = wait_for(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (!sink.received().is_empty()).then(Instant::now),
        || {
            r.context(&format!(
                "study never forwarded: {:?}",
                r.study_instances(study)
            ))
        },
    );
    let waited = first - last_store;
    assert!(
        waited >= Duration::from_millis(1500),
        "{}",
        r.context(&format!(
            "forwarded {waited:?} after the last instance, before the 2 s stability delay"
        ))
    );
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (sink.received().len() == 3).then_some(()),
        || r.context(&format!("sink has {:?}", sink.received())),
    );
    for uid in &uids {
        let dump = dcmdump(&sink.file_for(uid).unwrap());
        assert!(
            dump.lines().any(|l| l.starts_with("(0018,0015) CS [HAND]")),
            "{}",
            r.context(&format!("study body part not written to {uid}:\n{dump}"))
        );
    }
    let metrics = r.metrics();
    assert!(
        metrics.contains("radroute_studies_routed_total 1"),
        "{metrics}"
    );
}

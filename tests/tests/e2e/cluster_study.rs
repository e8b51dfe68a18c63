//! Issue 13, test 3: a study whose instances arrive at both nodes of a cluster is routed once,
//! as one study, with one study-level label. Two nodes on one PostgreSQL, a study-scope route
//! with `relabel = true`, the study's four instances sent alternately to node 1 and node 2
//! (two labelled HAND by the tiny model, two it abstains on, and those two go to node 2 only).
//! Orthanc is the PACS: every instance arrives once, all with Body Part Examined HAND, and the
//! study was routed once across both nodes. With study state in each node's memory, node 2
//! routed its half on its own (no label: the fallback) and the study was routed twice.

use std::collections::BTreeSet;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::PgServer;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::wait_for;

use super::classification::classify_toml;
use super::cluster_support::cluster_toml;

const ROUTES: &str = r#"
[routing]
fallback = ["fb"]
study_stable_after_secs = 3

[[routes]]
name = "hand-study"
scope = "study"
when.label = "HAND"
when.min_confidence = 0.2
destinations = ["pacs"]
relabel = true
"#;

/// Node `node_id` of the cluster on `url`, with the tiny model, the study route, Orthanc as
/// `pacs` and a fallback that nobody serves.
fn node(dir: &std::path::Path, url: &str, node_id: &str, pacs: u16) -> Radroute {
    std::fs::create_dir_all(dir).expect("node dir");
    let mut config = Config {
        routes: Some(ROUTES.into()),
        ..Config::default()
    }
    .destination("pacs", "PACS", pacs)
    .destination("fb", "FB", free_port());
    config.extra = format!(
        "{}{}",
        classify_toml("if-empty"),
        cluster_toml(url, node_id)
    );
    Radroute::start(dir, config)
}

fn routed(node: &Radroute) -> f64 {
    metric(&node.metrics(), "radroute_studies_routed_total", &[]).unwrap_or(0.0)
}

fn routings_logged(node: &Radroute) -> usize {
    node.log().matches("study stable: routing").count()
}

#[test]
fn a_study_across_two_nodes_is_routed_once_with_one_label() {
    let dir = radroute_e2e::test_dir("cluster-study");
    let d = dir.path();
    let url = PgServer::shared().new_database();
    let pacs = Orthanc::start(&d.join("orthanc"), "PACS");
    let n1 = node(&d.join("n1"), &url, "n1", pacs.dicom_port);
    let n2 = node(&d.join("n2"), &url, "n2", pacs.dicom_port);

    let study = "1.2.826.0.1.3680043.8.498.1313.3";
    let hand = Instance {
        study: Some(study),
        ..Instance::default()
    };
    let flat = Instance {
        study: Some(study),
        pattern: "flat",
        ..Instance::default()
    };
    let names = ["h1", "f1", "h2", "f2"];
    let paths: Vec<_> = names
        .iter()
        .map(|n| d.join(format!("in/{n}.dcm")))
        .collect();
    let uids = make_instances(&[
        (&paths[0], hand.clone()),
        (&paths[1], flat.clone()),
        (&paths[2], hand),
        (&paths[3], flat),
    ]);

    // Alternately, one association each: HAND to node 1, the abstaining ones to node 2.
    for (i, path) in paths.iter().enumerate() {
        let node = if i % 2 == 0 { &n1 } else { &n2 };
        let run = storescu("RADROUTE", node.dicom_port, &[], std::slice::from_ref(path));
        assert!(
            run.all_ok(std::slice::from_ref(path)),
            "{}",
            node.context(&run.log)
        );
    }

    let context = |what: &str| {
        format!(
            "{what}\nstudies routed: n1 {} n2 {}\nn1:\n{}\nn2:\n{}\northanc:\n{}",
            routed(&n1),
            routed(&n2),
            n1.log_tail(30),
            n2.log_tail(30),
            pacs.log_tail(10)
        )
    };
    let expected: BTreeSet<&String> = uids.iter().collect();
    let stored = wait_for(
        Duration::from_secs(40),
        Duration::from_millis(200),
        || {
            let stored: BTreeSet<&String> =
                uids.iter().filter(|u| pacs.lookup(u).is_some()).collect();
            (stored == expected).then_some(stored)
        },
        || context("not every instance of the study reached the PACS"),
    );
    assert_eq!(stored.len(), 4);
    // A second routing would come within a processing pass: give it time to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pacs.count_instances(),
        4,
        "{}",
        context("the PACS has more than the study")
    );
    for uid in &uids {
        let id = pacs.lookup(uid).expect("stored");
        let tags = pacs.tags(&id);
        assert_eq!(
            tags["BodyPartExamined"],
            "HAND",
            "{}",
            context(&format!("study body part not written to {uid}: {tags}"))
        );
    }
    assert_eq!(
        routed(&n1) + routed(&n2),
        1.0,
        "{}",
        context("the study was routed more than once")
    );
    assert_eq!(
        routings_logged(&n1) + routings_logged(&n2),
        1,
        "{}",
        context("\"study stable: routing\" logged more than once")
    );
}

//! Issue 5, SIGHUP while a transfer runs: a storescu stream of 30 radiographs; mid-stream the
//! configuration gains a second destination and SIGHUP is sent. Every instance of the stream is
//! acknowledged (the association is not touched), every instance acknowledged after the reload
//! reaches the new destination, everything reaches the old one. A configuration with an error
//! (bad regex) sent with SIGHUP is refused and the previous one keeps running.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use radroute_e2e::dcmtk::{parse_storescu_log, storescu, storescu_spawn};
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

const COUNT: usize = 30;

#[test]
fn sighup_mid_stream_adds_a_destination_and_bad_config_is_refused() {
    let dir = radroute_e2e::test_dir("reload");
    let d = dir.path();
    let corpus = gen_corpus(&d.join("corpus"), COUNT, 1024, 1024, 11);
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();
    let all: BTreeSet<String> = corpus.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let one = StoreScp::start(&d.join("sink-one"), "ONE", free_port());
    let two = StoreScp::start(&d.join("sink-two"), "TWO", free_port());
    let before = Config::default().destination("one", "ONE", one.port);
    let mut r = Radroute::start(d, before.clone());

    let log = d.join("storescu.log");
    let mut scu = storescu_spawn("RADROUTE", r.dicom_port, &[], &files, &log);
    let acks = || -> BTreeSet<PathBuf> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        parse_storescu_log(&text)
            .into_iter()
            .filter(|(_, s)| s.as_deref() == Some("Success"))
            .map(|(p, _)| p)
            .collect()
    };
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(5),
        || (acks().len() >= 5).then_some(()),
        || {
            r.context(&format!(
                "stream did not start:\n{}",
                radroute_e2e::file_tail(&log, 20)
            ))
        },
    );
    // Both destinations; the default route sends everything to every destination.
    let after = before.clone().destination("two", "TWO", two.port);
    assert!(r.reload(after.clone()), "{}", r.context("reload refused"));
    let acked_before_reload = acks();
    assert!(
        acked_before_reload.len() < COUNT,
        "the stream ended before the reload was applied; nothing tested mid-stream"
    );

    eprintln!(
        "[reload] {} of {COUNT} acknowledged when the reload was applied",
        acked_before_reload.len()
    );
    let status = scu.wait_exit(Duration::from_secs(120));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        r.context(&format!(
            "storescu did not end cleanly:\n{}",
            radroute_e2e::file_tail(&log, 20)
        ))
    );
    let responses = parse_storescu_log(&text);
    assert!(
        files
            .iter()
            .all(|f| responses.get(f).cloned().flatten().as_deref() == Some("Success")),
        "{}",
        r.context("not every instance of the stream was acknowledged")
    );
    let after_reload: BTreeSet<String> = corpus
        .iter()
        .filter(|f| !acked_before_reload.contains(&f.path))
        .map(|f| f.sop_instance_uid.clone())
        .collect();
    wait_for(
        Duration::from_secs(90),
        Duration::from_millis(200),
        || (one.received() == all && after_reload.is_subset(&two.received())).then_some(()),
        || {
            r.context(&format!(
                "old destination {} of {COUNT}; new destination has {} of the {} acknowledged after the reload",
                one.received().len(),
                two.received().intersection(&after_reload).count(),
                after_reload.len()
            ))
        },
    );

    // A bad regex: refused, the running configuration (both destinations) stays.
    let bad = Config {
        routes: Some(
            "\n[[routes]]\nwhen.attribute = [{ tag = \"InstitutionName\", regex = \"(unclosed\" }]\ndestinations = [\"one\"]\n\n[[routes]]\ndestinations = [\"one\"]\n"
                .into(),
        ),
        ..after.clone()
    };
    assert!(
        !r.reload(bad),
        "{}",
        r.context("a configuration with a bad regex was applied")
    );
    assert!(
        r.is_running(),
        "{}",
        r.context("radroute died on a bad configuration")
    );
    let extra = d.join("extra/x.dcm");
    let uid = make_instances(&[(&extra, Instance::default())]).remove(0);
    let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(&extra));
    assert!(
        run.all_ok(std::slice::from_ref(&extra)),
        "{}",
        r.context(&run.log)
    );
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (one.file_for(&uid).is_some() && two.file_for(&uid).is_some()).then_some(()),
        || {
            r.context("after the refused reload, the previous configuration (both destinations) should route")
        },
    );
    let metrics = r.metrics();
    assert!(
        metrics.contains("radroute_config_reloads_total 1"),
        "{metrics}"
    );
}

//! Issue 2, test 5: C-ECHO, SOP-class policy at negotiation, and the association limit.

use std::time::Duration;

use radroute_e2e::dcmtk::{echoscu, storescu};
use radroute_e2e::python::HeldAssociation;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::{sample, wait_for};

#[test]
fn echo_is_answered() {
    let dir = radroute_e2e::test_dir("echo");
    let r = Radroute::start(dir.path(), Config::default());
    let (code, out) = echoscu("RADROUTE", r.dicom_port);
    assert_eq!(code, Some(0), "{}", r.context(&out));
    assert!(
        out.contains("Received Echo Response (Success)"),
        "{}",
        r.context(&out)
    );
}

#[test]
fn unknown_sop_class_is_refused_at_negotiation() {
    let dir = radroute_e2e::test_dir("sopclass");
    let config = Config {
        sop_classes: vec!["1.2.840.10008.5.1.4.1.1.1".into()], // CR only
        ..Config::default()
    };
    let r = Radroute::start(dir.path(), config);

    let ct = sample("good/01_CT_ExplicitLE_MONO2_16s.dcm");
    let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(&ct));
    assert!(
        run.log.contains("No presentation context for: (CT)"),
        "{}",
        r.context(&format!(
            "storescu should find no presentation context for CT:\n{}",
            run.log
        ))
    );
    assert!(run.succeeded().is_empty(), "{}", r.context(&run.log));

    // Still serving: a CR instance is accepted, the CT one was never queued.
    let cr = sample("good/24_CR_ExplicitLE_MONO1_12u_16x16.dcm");
    let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(&cr));
    assert!(
        run.all_ok(std::slice::from_ref(&cr)),
        "{}",
        r.context(&run.log)
    );
    let ct_uid = radroute_e2e::dicom::sop_instance_uid(&ct);
    let jobs = r.queue_list();
    assert!(
        !jobs
            .iter()
            .any(|j| j["sop_instance_uid"] == ct_uid.as_str()),
        "CT was queued: {jobs:?}"
    );
    assert_eq!(
        r.queue_counts()["instances"]
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_u64()).sum::<u64>()),
        Some(1)
    );
}

#[test]
fn association_limit_rejects_transiently_then_recovers() {
    let dir = radroute_e2e::test_dir("limit");
    let config = Config {
        max_associations: 1,
        ..Config::default()
    };
    let r = Radroute::start(dir.path(), config);

    let held = HeldAssociation::open(r.dicom_port, "RADROUTE");
    let (code, out) = echoscu("RADROUTE", r.dicom_port);
    assert_ne!(
        code,
        Some(0),
        "{}",
        r.context(&format!(
            "echo must be rejected while the only slot is taken:\n{out}"
        ))
    );
    assert!(
        out.contains("Association Rejected") && out.contains("Rejected Transient"),
        "{}",
        r.context(&format!("expected a transient A-ASSOCIATE-RJ:\n{out}"))
    );

    held.release();
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let (code, out) = echoscu("RADROUTE", r.dicom_port);
            (code == Some(0) && out.contains("Received Echo Response (Success)")).then_some(())
        },
        || r.context("echo still refused after the held association was released"),
    );
}

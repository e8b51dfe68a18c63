//! Every kind of audit message radroute sends validates against the DICOM audit message
//! schema (PS3.15 A.5.1, vendored in schema/) with xmllint (libxml2-utils, installed by
//! `deploy/setup.sh --test`). A missing xmllint fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use radroute_audit::events::{self, AppIdentity, InstanceRef, Peer};
use radroute_audit::{AuditMessage, OperatorAction, OperatorActionKind};

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/dicom-audit-message.rng")
}

/// Runs xmllint on `xml`; returns its verdict and output.
fn validate(xml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("message.xml");
    std::fs::write(&file, xml).expect("write message");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(schema())
        .arg(&file)
        .output()
        .expect(
            "xmllint must be installed (apt-get install libxml2-utils; deploy/setup.sh --test)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn app() -> AppIdentity {
    AppIdentity {
        ae_title: "RADROUTE".into(),
        host: "router-1".into(),
        site_id: Some("Hospital".into()),
        process_id: 4242,
        launched_by: Some("radroute".into()),
    }
}

fn instance(with_patient: bool) -> InstanceRef {
    InstanceRef {
        study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".into(),
        sop_instance_uid: "1.2.826.0.1.3680043.8.498.1.2.3".into(),
        accession_number: Some("ACC<1>&".into()),
        patient_id: with_patient.then(|| "PID\u{1}42".into()),
        patient_name: with_patient.then(|| "Doe^Jane <script>".into()),
    }
}

fn every_message() -> Vec<(&'static str, AuditMessage)> {
    let app = app();
    let modality = Peer {
        ae_title: "MODALITY".into(),
        address: Some("10.0.0.7".into()),
    };
    let pacs = Peer {
        ae_title: "PACS".into(),
        address: Some("pacs.example.org".into()),
    };
    let now = Utc::now();
    let mut out = vec![
        (
            "received",
            events::instance_received(&app, &modality, &instance(true), now),
        ),
        (
            "forwarded",
            events::instance_forwarded(&app, &pacs, &instance(false), None, now),
        ),
        (
            "dead letter",
            events::instance_forwarded(&app, &pacs, &instance(false), Some("A700 refused"), now),
        ),
        ("start", events::application_activity(&app, true, now)),
        ("stop", events::application_activity(&app, false, now)),
    ];
    for kind in [
        OperatorActionKind::RetryJob,
        OperatorActionKind::DropJob,
        OperatorActionKind::RetryDead,
        OperatorActionKind::ReloadRules,
        OperatorActionKind::Echo,
    ] {
        let action = OperatorAction::now(
            "admin",
            Some("127.0.0.1".into()),
            kind,
            "job/42",
            Err("job 42 is not dead".into()),
        );
        out.push((kind.as_str(), events::operator_action(&app, &action)));
    }
    out
}

#[test]
fn every_message_validates_against_the_dicom_schema() {
    for (name, message) in every_message() {
        let xml = message.to_xml();
        let (ok, output) = validate(&xml);
        assert!(ok, "{name} does not validate:\n{output}\n{xml}");
    }
}

/// The check can fail: a message without its mandatory ActiveParticipant is refused.
#[test]
fn the_schema_refuses_an_invalid_message() {
    let mut message = events::application_activity(&app(), true, Utc::now());
    message.participants.clear();
    let (ok, output) = validate(&message.to_xml());
    assert!(!ok, "a message without participants validated: {output}");
}

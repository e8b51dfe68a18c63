//! Correctness of the routing inputs (issue 10): `time` conditions see the instance's arrival
//! time, and rules see the association's peer address also when the spooled file cannot be read.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{Datelike, Local};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radroute_queue::{ForwardQueue, InstanceRecord, NewInstance, UnixMillis};
use radroute_spool::{FileKind, InstanceId};
use tokio::sync::Notify;

use super::Processing;

const CR: &str = "1.2.840.10008.5.1.4.1.1.1";

/// A processing step over a temporary spool and queue with destinations `a` and `b` and
/// `routes` (TOML); no labeler.
fn processing(dir: &tempfile::TempDir, routes: &str) -> Processing {
    let config = dir.path().join("radroute.toml");
    let text = format!(
        "[spool]\ndir = {spool:?}\n[admin]\nlisten = \"\"\n\
         [[destinations]]\nname = \"a\"\nae_title = \"A\"\naddress = \"127.0.0.1:1\"\n\
         [[destinations]]\nname = \"b\"\nae_title = \"B\"\naddress = \"127.0.0.1:2\"\n{routes}",
        spool = dir.path().join("spool").display().to_string(),
    );
    std::fs::write(&config, text).expect("write config");
    let cfg = radroute_config::load(Some(&config)).expect("config loads");
    let (spool, queue) = crate::open_storage(&cfg).expect("storage opens");
    let queue: Arc<dyn ForwardQueue> = queue;
    Processing {
        spool,
        queue,
        rules: RwLock::new(Arc::new(cfg.rules().expect("rules compile"))),
        labeler: None,
        wake_forward: Arc::new(Notify::new()),
        studies: Arc::new(crate::studies::MemoryStudies::default()),
        handoff: Arc::new(crate::handoff::Handoff::new(0)),
        backlog: Default::default(),
        evidence: None,
    }
}

/// Spools and queues one CR instance received at `received_at` from `peer`.
fn receive(p: &Processing, received_at: UnixMillis, peer: &str) -> InstanceRecord {
    let sop = "1.2.826.0.1.3680043.8.498.10";
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, CR));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "CR"));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CR)
                .media_storage_sop_instance_uid(sop)
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .expect("valid meta");
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).expect("write object");
    let id = InstanceId::generate();
    p.spool
        .put(FileKind::Incoming, &id, &[&bytes])
        .expect("spool file");
    p.queue
        .add_instance(&NewInstance {
            id: id.to_string(),
            sop_instance_uid: sop.into(),
            sop_class_uid: CR.into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: None,
            calling_ae: "MODALITY".into(),
            called_ae: "RADROUTE".into(),
            peer_addr: peer.into(),
            received_at,
            bytes: bytes.len() as u64,
        })
        .expect("queue instance");
    p.queue
        .instance(id.as_ref())
        .expect("read back")
        .expect("instance exists")
        .instance
}

/// An instance that arrived three days ago (so on another weekday) and is processed now, after a
/// backlog or a restart: a route for the weekday of its arrival applies, not one for today.
#[test]
fn time_conditions_see_the_arrival_time() {
    let arrived = UnixMillis::now().saturating_sub(Duration::from_secs(3 * 86_400));
    let day = chrono::DateTime::<Local>::from(arrived.to_system_time())
        .weekday()
        .to_string()
        .to_ascii_lowercase();
    let routes = format!(
        "[[routes]]\nname = \"arrival-day\"\nwhen.time = {{ days = [\"{day}\"] }}\n\
         destinations = [\"a\"]\n[[routes]]\ndestinations = [\"b\"]\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let p = processing(&dir, &routes);
    let record = receive(&p, arrived, "127.0.0.1:40000");
    assert_eq!(p.process(&record).destinations, vec!["a".to_string()]);
    // Received now, the same route does not apply.
    let today = receive(&p, UnixMillis::now(), "127.0.0.1:40000");
    assert_eq!(p.process(&today).destinations, vec!["b".to_string()]);
}

/// A spooled file that cannot be read is routed on what the queue knows, the sender's address
/// included: a `source` route for that sender applies.
#[test]
fn unreadable_instances_are_routed_on_the_peer_address() {
    let routes = "[[routes]]\nname = \"ward\"\nwhen.source = \"10.9.8.0/24\"\n\
                  destinations = [\"a\"]\n[[routes]]\ndestinations = [\"b\"]\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let p = processing(&dir, routes);
    let record = receive(&p, UnixMillis::now(), "10.9.8.7:4000");
    let id: InstanceId = record.id.parse().expect("id");
    std::fs::write(
        p.spool.local_file(FileKind::Incoming, &id).unwrap(),
        b"not DICOM",
    )
    .expect("damage file");
    let processed = p.process(&record);
    assert!(
        processed
            .note
            .as_deref()
            .is_some_and(|n| n.contains("cannot read spooled file")),
        "{:?}",
        processed.note
    );
    assert_eq!(processed.destinations, vec!["a".to_string()]);
    // Another sender goes by the catch-all.
    let other = receive(&p, UnixMillis::now(), "192.168.1.5:4000");
    assert_eq!(p.process(&other).destinations, vec!["b".to_string()]);
}

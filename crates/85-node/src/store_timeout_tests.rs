//! The store step against storage that stops answering (a hung disk or file system): the
//! C-STORE is refused with A700 within `[node] store_timeout_secs`, and when the storage answers
//! at last, the instance it was refused for is neither left in the spool nor queued.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use radroute_dimse::Status;
use radroute_queue::ForwardQueue;
use radroute_receive::{AssociationInfo, IncomingInstance, StoreHandler};
use radroute_spool::{FileKind, FileStat, InstanceId, InstanceStore, PutStream, Result, Usage};

use super::SpoolingHandler;

const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// A store whose `put` waits until the gate opens (a hung disk), then does its work.
#[derive(Debug)]
struct Hung {
    inner: Arc<dyn InstanceStore>,
    open: Mutex<bool>,
    opened: Condvar,
    /// Set once a held `put` has finished.
    put_done: AtomicBool,
}

impl Hung {
    fn release(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }
}

impl InstanceStore for Hung {
    fn backend(&self) -> &'static str {
        "hung"
    }
    fn put(&self, kind: FileKind, id: &InstanceId, parts: &[&[u8]]) -> Result<()> {
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.opened.wait(open).expect("gate");
        }
        drop(open);
        let r = self.inner.put(kind, id, parts);
        self.put_done.store(true, Ordering::SeqCst);
        r
    }
    fn begin_put(&self, kind: FileKind, id: &InstanceId) -> Result<Box<dyn PutStream>> {
        self.inner.begin_put(kind, id)
    }
    fn read(&self, kind: FileKind, id: &InstanceId) -> Result<Vec<u8>> {
        self.inner.read(kind, id)
    }
    fn local_file(&self, kind: FileKind, id: &InstanceId) -> Result<PathBuf> {
        self.inner.local_file(kind, id)
    }
    fn contains(&self, kind: FileKind, id: &InstanceId) -> Result<bool> {
        self.inner.contains(kind, id)
    }
    fn stat(&self, kind: FileKind, id: &InstanceId) -> Result<FileStat> {
        self.inner.stat(kind, id)
    }
    fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> Result<()> {
        self.inner.remove_kind(kind, id)
    }
    fn remove(&self, id: &InstanceId) -> Result<()> {
        self.inner.remove(id)
    }
    fn list(&self, kind: FileKind) -> Result<Vec<InstanceId>> {
        self.inner.list(kind)
    }
    fn quarantine(&self, kind: FileKind, id: &InstanceId) -> Result<String> {
        self.inner.quarantine(kind, id)
    }
    fn free_bytes(&self) -> Result<u64> {
        self.inner.free_bytes()
    }
    fn usage(&self) -> Result<Usage> {
        self.inner.usage()
    }
    fn check_ready(&self) -> Result<()> {
        self.inner.check_ready()
    }
}

/// A small CR data set in Explicit VR Little Endian, as a C-STORE carries it.
fn data_set(sop: &str) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, CR));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop));
    obj.put(DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "CR"));
    let mut bytes = Vec::new();
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    obj.write_dataset_with_ts(&mut bytes, &ts).expect("encode");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_storage_does_not_answer_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("radroute.toml");
    let text = format!(
        "[spool]\ndir = {spool:?}\n[admin]\nlisten = \"\"\n[node]\nmin_free_mb = 0\n\
         [[destinations]]\nname = \"pacs\"\nae_title = \"PACS\"\naddress = \"127.0.0.1:1\"\n\
         [[routes]]\ndestinations = [\"pacs\"]\n",
        spool = dir.path().join("spool").display().to_string(),
    );
    std::fs::write(&config, text).expect("write config");
    let cfg = radroute_config::load(Some(&config)).expect("config loads");
    let (spool, queue) = crate::open_storage(&cfg).expect("storage opens");
    let hung = Arc::new(Hung {
        inner: spool,
        open: Mutex::new(false),
        opened: Condvar::new(),
        put_done: AtomicBool::new(false),
    });
    let timeout = Duration::from_millis(400);
    let handler = SpoolingHandler {
        audit: radroute_audit::Audit::disabled(radroute_audit::AppIdentity {
            ae_title: "RADROUTE".into(),
            host: "test".into(),
            site_id: None,
            process_id: std::process::id(),
            launched_by: None,
        }),
        spool: hung.clone(),
        queue: queue.clone(),
        ingest: None,
        wake_processing: Default::default(),
        min_free_bytes: Default::default(),
        handoff: Arc::new(crate::handoff::Handoff::new(96 << 20)),
        backlog: Default::default(),
        max_unprocessed: Default::default(),
        max_inflated: 64 << 20,
        store_timeout: timeout,
    };
    let sop = "1.2.3.4.5";
    let instance = IncomingInstance {
        association: Arc::new(AssociationInfo {
            id: 1,
            calling_ae: "MODALITY".into(),
            called_ae: "RADROUTE".into(),
            peer: "127.0.0.1:11112".parse().expect("address"),
        }),
        sop_class_uid: CR.into(),
        sop_instance_uid: sop.into(),
        transfer_syntax: EXPLICIT_LE.into(),
        data: data_set(sop),
    };

    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), handler.store(instance, None)).await;
    let Ok(answer) = answer else {
        // Let the held write end, so that the test fails instead of hanging on it.
        hung.release();
        panic!("the C-STORE was not answered while storage hung");
    };
    assert_eq!(answer.status, Status::OUT_OF_RESOURCES, "{answer:?}");
    assert!(started.elapsed() < timeout * 5, "{:?}", started.elapsed());

    // Storage answers at last: its write completes, then the store step, seeing its C-STORE
    // refused, removes the file instead of queueing it.
    hung.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = hung.list(FileKind::Incoming).expect("list");
        if hung.put_done.load(Ordering::SeqCst) && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused instance stayed in the spool: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The queue insert would come right after the file: give a late one the time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = queue.counts().expect("counts");
    assert_eq!(
        counts.instances.received + counts.instances.routed + counts.instances.done,
        0,
        "a refused instance was queued: {counts:?}"
    );
}

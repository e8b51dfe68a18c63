//! Liveness of the processing step (issue 10): a panic while processing one instance does not
//! leave it stuck, held studies do not starve everything else, and an instance held for its
//! study is always routed with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject};
use radroute_queue::{
    Counts, ForwardQueue, InstanceDetail, InstanceRecord, InstanceState, Job, JobFilter, JobId,
    JobState, JobView, NewInstance, Outcome, RecoveryReport, Retention, UnixMillis,
};
use radroute_spool::{FileKind, InstanceId};
use tokio::sync::{watch, Notify};

use super::Processing;
use crate::label::{LabelOutcome, Labeler};
use crate::studies::{Member, MemoryStudies, StudyState, StudyStateError, TakenStudy};

const CR: &str = "1.2.840.10008.5.1.4.1.1.1";

/// A processing step over a temporary spool and queue, with `routes` (TOML) to one destination
/// `pacs`.
struct Fixture {
    _dir: tempfile::TempDir,
    processing: Arc<Processing>,
}

fn fixture(labeler: Option<Arc<dyn Labeler>>, routing: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("radroute.toml");
    let text = format!(
        "[spool]\ndir = {spool:?}\n[admin]\nlisten = \"\"\n\
         [[destinations]]\nname = \"pacs\"\nae_title = \"PACS\"\naddress = \"127.0.0.1:1\"\n{routing}",
        spool = dir.path().join("spool").display().to_string(),
    );
    std::fs::write(&config, text).expect("write config");
    let cfg = radroute_config::load(Some(&config)).expect("config loads");
    let rules = cfg.rules().expect("rules compile");
    let (spool, queue) = crate::open_storage(&cfg).expect("storage opens");
    let queue: Arc<dyn ForwardQueue> = queue;
    let processing = Arc::new(Processing {
        spool,
        queue,
        rules: RwLock::new(Arc::new(rules)),
        labeler,
        wake_forward: Arc::new(Notify::new()),
        studies: Arc::new(crate::studies::MemoryStudies::default()),
        handoff: Arc::new(crate::handoff::Handoff::new(0)),
        backlog: Default::default(),
        evidence: None,
    });
    Fixture {
        _dir: dir,
        processing,
    }
}

/// Spools and queues one instance of `study` with `modality`; returns its queue record.
fn receive(p: &Processing, study: &str, modality: &str, n: usize) -> InstanceRecord {
    let sop = format!("{study}.{n}");
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, CR));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        sop.as_str(),
    ));
    obj.put(DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, study));
    obj.put(DataElement::new(tags::MODALITY, VR::CS, modality));
    let file: DefaultDicomObject = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CR)
                .media_storage_sop_instance_uid(sop.as_str())
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
            sop_instance_uid: sop,
            sop_class_uid: CR.into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: Some(study.into()),
            calling_ae: "MODALITY".into(),
            called_ae: "RADROUTE".into(),
            peer_addr: "127.0.0.1:40000".into(),
            received_at: UnixMillis::now(),
            bytes: bytes.len() as u64,
        })
        .expect("queue instance");
    p.queue
        .instance(id.as_str())
        .expect("read back")
        .expect("instance exists")
        .instance
}

/// Waits until every instance in `ids` has left `received`; panics with the stragglers.
fn wait_processed(p: &Processing, ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<&String> = ids
            .iter()
            .filter(|id| {
                p.queue
                    .instance(id)
                    .ok()
                    .flatten()
                    .is_some_and(|d| d.instance.state == InstanceState::Received)
            })
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} instances still `received` after {timeout:?}",
            left.len(),
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the processing loop for the duration of a test.
struct Running {
    stop: watch::Sender<bool>,
}

fn start(rt: &tokio::runtime::Runtime, p: &Arc<Processing>, workers: usize) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    rt.spawn(p.clone().run(Arc::new(Notify::new()), workers, stop_rx));
    Running { stop }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What the test labelers do when they label: Body Part Examined CHEST, confidence 0.9.
fn label_chest(obj: &mut DefaultDicomObject) -> LabelOutcome {
    obj.put(DataElement::new(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
    LabelOutcome {
        label: Some("CHEST".into()),
        confidence: Some(0.9),
        note: None,
        modified: true,
        ..Default::default()
    }
}

/// Panics on the first `panics` instances it sees, labels the others "CHEST".
struct PanickingLabeler {
    panics: std::sync::atomic::AtomicUsize,
}

impl Labeler for PanickingLabeler {
    fn label(&self, obj: &mut DefaultDicomObject) -> LabelOutcome {
        if self
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("decoder bug in a test");
        }
        label_chest(obj)
    }
}

#[test]
fn a_panic_while_processing_routes_the_instance_unlabelled_with_a_note() {
    let f = fixture(
        Some(Arc::new(PanickingLabeler { panics: 1.into() })),
        "[[routes]]\ndestinations = [\"pacs\"]\n",
    );
    let p = &f.processing;
    let rt = runtime();
    let first = receive(p, "1.2.3", "CR", 1);
    let _running = start(&rt, p, 1);
    wait_processed(p, std::slice::from_ref(&first.id), Duration::from_secs(10));
    let detail = p.queue.instance(&first.id).unwrap().unwrap();
    assert_eq!(detail.instance.state, InstanceState::Routed);
    assert_eq!(detail.instance.label, None);
    let note = detail.instance.processing_note.unwrap_or_default();
    assert!(
        note.contains("processing panicked") && note.contains("decoder bug in a test"),
        "note: {note:?}"
    );
    assert_eq!(detail.jobs.len(), 1, "forwarded to pacs");
    // Forwarded as received: nothing half-written by the panicked attempt is sent instead.
    let id: InstanceId = first.id.parse().unwrap();
    assert!(!p.spool.contains(FileKind::Header, &id).unwrap());
    assert!(!p.spool.contains(FileKind::Processed, &id).unwrap());
    // The loop goes on with the next instance, which is labelled as usual.
    let second = receive(p, "1.2.3", "CR", 2);
    wait_processed(p, std::slice::from_ref(&second.id), Duration::from_secs(10));
    let detail = p.queue.instance(&second.id).unwrap().unwrap();
    assert_eq!(detail.instance.label.as_deref(), Some("CHEST"));
}

#[test]
fn held_studies_do_not_starve_other_instances() {
    // CT instances wait for their study (stable after 10 minutes); CR goes straight through.
    let f = fixture(
        None,
        "[routing]\nstudy_stable_after_secs = 600\nfallback = [\"pacs\"]\n\
         [[routes]]\nname = \"ct-study\"\nscope = \"study\"\nwhen.modality = \"CT\"\ndestinations = [\"pacs\"]\n\
         [[routes]]\nname = \"cr\"\nwhen.modality = \"CR\"\ndestinations = [\"pacs\"]\n",
    );
    let p = &f.processing;
    let rt = runtime();
    // More held instances than one page of pending instances.
    let held: Vec<String> = (0..super::PENDING_PAGE + 4)
        .map(|n| receive(p, "1.2.4", "CT", n).id)
        .collect();
    let _running = start(&rt, p, 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.studies.held().unwrap().len() < super::PENDING_PAGE {
        assert!(Instant::now() < deadline, "CT instances were not held");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cr = receive(p, "1.2.5", "CR", 1);
    wait_processed(p, std::slice::from_ref(&cr.id), Duration::from_secs(10));
    assert_eq!(
        p.queue.instance(&cr.id).unwrap().unwrap().instance.state,
        InstanceState::Routed
    );
    // Every CT instance was processed and is held, none routed yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.studies.held().unwrap().len() < held.len() {
        assert!(Instant::now() < deadline, "not every CT instance was held");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Labels every instance and makes its processed file large, so that writing it takes a while.
struct BulkyLabeler;

impl Labeler for BulkyLabeler {
    fn label(&self, obj: &mut DefaultDicomObject) -> LabelOutcome {
        obj.put(DataElement::new(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
        obj.put(DataElement::new(
            dicom_core::Tag(0x0009, 0x1000),
            VR::OB,
            dicom_core::PrimitiveValue::from(vec![0u8; 24 << 20]),
        ));
        LabelOutcome {
            label: Some("CHEST".into()),
            confidence: Some(0.9),
            note: None,
            modified: true,
            ..Default::default()
        }
    }
}

#[test]
fn an_instance_held_while_its_study_is_routed_is_not_left_behind() {
    // A study is stable as soon as it is observed and the routing of stable studies runs all
    // the time, so it falls between any two steps of holding an instance that are not atomic
    // (here: writing its 24 MB processed file).
    let f = fixture(
        Some(Arc::new(BulkyLabeler)),
        "[routing]\nfallback = [\"pacs\"]\n[[routes]]\nscope = \"study\"\ndestinations = [\"pacs\"]\n",
    );
    let p = stable_at_once(&f);
    let records: Vec<InstanceRecord> = (0..3).map(|n| receive(&p, "1.2.6", "CR", n)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let router = {
        let p = p.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                p.route_stable_studies();
            }
        })
    };
    for record in &records {
        p.process_and_route(record);
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_processed(&p, &ids, Duration::from_secs(5))
    }));
    done.store(true, Ordering::Relaxed);
    router.join().expect("router thread");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(p.studies.held().unwrap().is_empty());
}

#[test]
fn a_study_taken_again_leaves_members_already_routed_as_they_are() {
    // A taker that died mid-route routed some members; the node that takes the study again
    // gets every member and must neither rewrite the files of those nor route them again.
    let f = fixture(
        None,
        "[routing]\nfallback = [\"pacs\"]\n[[routes]]\nscope = \"study\"\n\
         destinations = [\"pacs\"]\nset = { StudyDescription = \"STUDY ROUTED\" }\n",
    );
    let p = stable_at_once(&f);
    let first = receive(&p, "1.2.7", "CR", 1);
    let second = receive(&p, "1.2.7", "CR", 2);
    p.process_and_route(&first);
    p.process_and_route(&second);
    assert_eq!(p.studies.held().unwrap().len(), 2);
    p.queue
        .route_instance(
            &first.id,
            None,
            Some("routed by the first taker"),
            &["pacs".to_string()],
            UnixMillis::now(),
        )
        .unwrap();
    p.route_stable_studies();
    let routed_before = p.queue.instance(&first.id).unwrap().unwrap();
    assert_eq!(
        routed_before.instance.processing_note.as_deref(),
        Some("routed by the first taker")
    );
    let id: InstanceId = first.id.parse().unwrap();
    assert!(
        !p.spool.contains(FileKind::Header, &id).unwrap()
            && !p.spool.contains(FileKind::Processed, &id).unwrap(),
        "the study's edits were written into an instance already routed"
    );
    let routed_now = p.queue.instance(&second.id).unwrap().unwrap();
    assert_eq!(routed_now.instance.state, InstanceState::Routed);
    assert_eq!(routed_now.jobs.len(), 1);
    let id: InstanceId = second.id.parse().unwrap();
    assert!(
        p.spool.contains(FileKind::Header, &id).unwrap()
            || p.spool.contains(FileKind::Processed, &id).unwrap(),
        "the study's edit was not written into the member it routed"
    );
    assert!(p.studies.held().unwrap().is_empty());
}

/// The fixture's processing step with study state whose studies are stable at once.
fn stable_at_once(f: &Fixture) -> Arc<Processing> {
    Arc::new(Processing {
        studies: Arc::new(StableAtOnce(MemoryStudies::default())),
        spool: f.processing.spool.clone(),
        queue: f.processing.queue.clone(),
        rules: RwLock::new(f.processing.rules.read().unwrap().clone()),
        labeler: f.processing.labeler.clone(),
        wake_forward: f.processing.wake_forward.clone(),
        handoff: f.processing.handoff.clone(),
        backlog: f.processing.backlog.clone(),
        evidence: None,
    })
}

/// Study state whose studies are stable as soon as they are observed (the rules allow 1 s at
/// least).
struct StableAtOnce(MemoryStudies);

impl StudyState for StableAtOnce {
    fn hold(&self, member: Member) -> Result<(), StudyStateError> {
        self.0.hold(member)
    }
    fn held(&self) -> Result<std::collections::HashSet<String>, StudyStateError> {
        self.0.held()
    }
    fn take_stable(&self, _: Duration) -> Result<Vec<TakenStudy>, StudyStateError> {
        self.0.take_stable(Duration::ZERO)
    }
    fn finish(&self, study: &TakenStudy) -> Result<(), StudyStateError> {
        self.0.finish(study)
    }
}

/// A queue whose page of pending instances arrives late: it is read at once and handed back
/// after `delay`, as a slow database or a busy disk would, so that instances in progress when
/// the page was read have finished by the time the loop looks at it.
struct LatePendingPage {
    inner: Arc<dyn ForwardQueue>,
    delay: Duration,
}

impl ForwardQueue for LatePendingPage {
    fn add_instance(&self, i: &NewInstance) -> radroute_queue::Result<()> {
        self.inner.add_instance(i)
    }
    fn pending_processing(&self, limit: usize) -> radroute_queue::Result<Vec<InstanceRecord>> {
        let page = self.inner.pending_processing(limit);
        std::thread::sleep(self.delay);
        page
    }
    fn route_instance_with_priority(
        &self,
        id: &str,
        label: Option<&str>,
        note: Option<&str>,
        destinations: &[String],
        priority: i8,
        now: UnixMillis,
    ) -> radroute_queue::Result<()> {
        self.inner
            .route_instance_with_priority(id, label, note, destinations, priority, now)
    }
    fn lease(&self, d: &str, max: usize, now: UnixMillis) -> radroute_queue::Result<Vec<Job>> {
        self.inner.lease(d, max, now)
    }
    fn next_due(&self, d: &str) -> radroute_queue::Result<Option<UnixMillis>> {
        self.inner.next_due(d)
    }
    fn complete(&self, j: JobId, o: &Outcome, now: UnixMillis) -> radroute_queue::Result<JobState> {
        self.inner.complete(j, o, now)
    }
    fn recover(&self, now: UnixMillis) -> radroute_queue::Result<RecoveryReport> {
        self.inner.recover(now)
    }
    fn release_stale(&self, before: UnixMillis, now: UnixMillis) -> radroute_queue::Result<u64> {
        self.inner.release_stale(before, now)
    }
    fn purgeable(
        &self,
        now: UnixMillis,
        retention: Retention,
        limit: usize,
    ) -> radroute_queue::Result<Vec<String>> {
        self.inner.purgeable(now, retention, limit)
    }
    fn mark_done(&self, id: &str, now: UnixMillis) -> radroute_queue::Result<()> {
        self.inner.mark_done(id, now)
    }
    fn open_instances(&self) -> radroute_queue::Result<Vec<(String, InstanceState)>> {
        self.inner.open_instances()
    }
    fn fail_jobs(&self, id: &str, error: &str, now: UnixMillis) -> radroute_queue::Result<usize> {
        self.inner.fail_jobs(id, error, now)
    }
    fn counts(&self) -> radroute_queue::Result<Counts> {
        self.inner.counts()
    }
    fn list_jobs(&self, f: &JobFilter) -> radroute_queue::Result<Vec<JobView>> {
        self.inner.list_jobs(f)
    }
    fn retry_job(&self, j: JobId, now: UnixMillis) -> radroute_queue::Result<()> {
        self.inner.retry_job(j, now)
    }
    fn retry_dead(&self, d: Option<&str>, now: UnixMillis) -> radroute_queue::Result<usize> {
        self.inner.retry_dead(d, now)
    }
    fn drop_job(&self, j: JobId, now: UnixMillis) -> radroute_queue::Result<()> {
        self.inner.drop_job(j, now)
    }
    fn instance(&self, id: &str) -> radroute_queue::Result<Option<InstanceDetail>> {
        self.inner.instance(id)
    }
    fn study(&self, uid: &str) -> radroute_queue::Result<Vec<InstanceDetail>> {
        self.inner.study(uid)
    }
}

/// Labels "CHEST" after `work`, counting how often it was asked.
struct CountingLabeler {
    calls: std::sync::atomic::AtomicUsize,
    work: Duration,
}

impl Labeler for CountingLabeler {
    fn label(&self, obj: &mut DefaultDicomObject) -> LabelOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.work);
        label_chest(obj)
    }
}

#[test]
fn an_instance_that_finishes_while_the_pending_page_is_read_is_not_processed_again() {
    let labeler = Arc::new(CountingLabeler {
        calls: 0.into(),
        work: Duration::from_millis(100),
    });
    let f = fixture(
        Some(labeler.clone()),
        "[[routes]]\ndestinations = [\"pacs\"]\n",
    );
    let base = &f.processing;
    // The page is read while the instance is being labelled and handed back after it was routed.
    let p = Arc::new(Processing {
        spool: base.spool.clone(),
        queue: Arc::new(LatePendingPage {
            inner: base.queue.clone(),
            delay: Duration::from_millis(400),
        }),
        rules: RwLock::new(base.rules.read().expect("rules").clone()),
        labeler: Some(labeler.clone()),
        wake_forward: Arc::new(Notify::new()),
        studies: Arc::new(MemoryStudies::default()),
        handoff: Arc::new(crate::handoff::Handoff::new(0)),
        backlog: Default::default(),
        evidence: None,
    });
    let rt = runtime();
    let ids: Vec<String> = (1..=3).map(|n| receive(&p, "1.2.9", "CR", n).id).collect();
    let _running = start(&rt, &p, 1);
    wait_processed(&p, &ids, Duration::from_secs(20));
    // Two more passes of the loop: a second processing would show up as more calls.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        labeler.calls.load(Ordering::SeqCst),
        ids.len(),
        "each instance labelled exactly once"
    );
}

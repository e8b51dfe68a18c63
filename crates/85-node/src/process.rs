//! The processing step between "spooled" and "forwarded": label (when a labeler is configured),
//! evaluate the routing rules, write the processed file, create the forward jobs.
//!
//! Architecture invariant: processing never blocks forwarding. Whatever fails here (a file that
//! does not decode, a model error), the instance is still routed, unlabelled, with the reason in
//! its processing note and a counter.

use std::collections::HashSet;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dicom_core::Tag as DicomTag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radroute_queue::{ForwardQueue, InstanceRecord, UnixMillis};
use radroute_route::{Attributes, InstanceLabel, RouteInput, RuleRef, RuleSet, Tag};
use radroute_spool::{FileKind, InstanceId, InstanceStore};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::label::{LabelOutcome, Labeler};
use super::studies::{Member, StudyState, TakenStudy};

/// Received instances read from the queue per pass of the processing loop, beyond those it
/// already holds or works on (which it skips).
const PENDING_PAGE: usize = 256;

/// Route-rule view of a DICOM object.
pub(crate) struct ObjectAttributes<'a>(pub(crate) &'a DefaultDicomObject);

impl Attributes for ObjectAttributes<'_> {
    fn get(&self, tag: Tag) -> Option<String> {
        radroute_dataset::attr::raw_text(self.0, DicomTag(tag.group, tag.element))
    }
    fn exists(&self, tag: Tag) -> bool {
        matches!(
            self.0.element_opt(DicomTag(tag.group, tag.element)),
            Ok(Some(_))
        )
    }
}

/// Shared state of the processing step.
pub struct Processing {
    pub(crate) spool: Arc<dyn InstanceStore>,
    pub(crate) queue: Arc<dyn ForwardQueue>,
    pub(crate) rules: RwLock<Arc<RuleSet>>,
    pub(crate) labeler: Option<Arc<dyn Labeler>>,
    pub(crate) wake_forward: Arc<Notify>,
    /// Study-scope routing state: in memory, or in PostgreSQL in cluster mode (studies/).
    pub(crate) studies: Arc<dyn StudyState>,
    /// Objects the store step parsed, taken instead of reading the spool file back.
    pub(crate) handoff: Arc<super::handoff::Handoff>,
    /// Instances waiting for processing (flow control of the store step).
    pub(crate) backlog: Arc<super::backlog::Backlog>,
    /// What processing saw and decided, kept for the console (`None`: not kept).
    pub(crate) evidence: Option<Arc<radroute_evidence::EvidenceStore>>,
}

/// What processing decided for one instance.
struct Processed {
    /// Job priority from the routing rules (-1 low, 0 medium, 1 high).
    priority: i8,
    label: Option<String>,
    note: Option<String>,
    destinations: Vec<String>,
    /// Study-scope routes matched: hold the instance until its study is stable.
    held: Option<HeldInstance>,
}

/// An instance waiting for its study to become stable (study-scope routing).
#[derive(Debug, Clone)]
pub(crate) struct HeldInstance {
    study_instance_uid: String,
    /// Destinations from instance-scope routes, sent together with the study's.
    destinations: Vec<String>,
    /// What the study tracker learns of the instance when it is held.
    instance: InstanceLabel,
    /// The study-scope routes it was deferred to.
    deferred: Vec<RuleRef>,
}

impl Processing {
    /// Runs until `stop` turns true: picks up received instances (also those left over from a
    /// previous run) and processes up to `workers` at a time on the blocking pool.
    pub async fn run(
        self: Arc<Self>,
        wake: Arc<Notify>,
        workers: usize,
        mut stop: watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(workers.max(1)));
        let in_progress: Arc<Mutex<HashSet<String>>> = Arc::default();
        // Held instances seen on the last pass: the next read of pending instances reaches
        // past them.
        let mut held_last_pass = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            // Held and in-progress instances are still `received` and come first (oldest):
            // read past them, so however many wait for their study, the others are seen.
            // The instances in progress are read BEFORE the pending ones: only this loop starts
            // processing, so an instance not in progress now is not processed by anyone during
            // this pass; read after, an instance that finished (routed) while the pending page
            // was read would be in neither set and be processed a second time.
            let busy: HashSet<String> = in_progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let queue = self.queue.clone();
            let limit = PENDING_PAGE + busy.len() + held_last_pass;
            let pending = tokio::task::spawn_blocking(move || {
                queue
                    .pending_processing(limit)
                    .map_err(|e| warn!(error = %e, "cannot read pending instances"))
                    .ok()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
            // The held ones after the pending ones: an instance not in progress when `busy` was
            // read was held (if at all) before that, so it is in this set unless its study was
            // routed meanwhile (by another node: then it is no longer `received` either, and a
            // second routing is refused by the queue).
            let held = if pending.is_empty() {
                Some(HashSet::new())
            } else {
                let studies = self.studies.clone();
                tokio::task::spawn_blocking(move || {
                    studies
                        .held()
                        .map_err(|e| warn!(error = %e, "cannot read held instances"))
                        .ok()
                })
                .await
                .ok()
                .flatten()
            };
            // Held instances unknown (database trouble): process none this pass.
            let fresh: Vec<InstanceRecord> = match &held {
                Some(held) => {
                    held_last_pass = held.len();
                    pending
                        .into_iter()
                        .filter(|r| !busy.contains(&r.id) && !held.contains(&r.id))
                        .collect()
                }
                None => Vec::new(),
            };
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.route_stable_studies()).await;
            if fresh.is_empty() {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for record in fresh {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                in_progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(record.id.clone());
                let claim = Claim {
                    in_progress: in_progress.clone(),
                    id: record.id.clone(),
                    backlog: self.backlog.clone(),
                    _permit: permit,
                };
                let this = self.clone();
                tokio::task::spawn_blocking(move || {
                    let _claim = claim;
                    this.process_and_route(&record);
                });
            }
        }
    }

    fn process_and_route(&self, record: &InstanceRecord) {
        let started = std::time::Instant::now();
        let processed = self.process_isolated(record);
        if let Some(held) = processed.held {
            info!(
                sop_instance_uid = %record.sop_instance_uid,
                study_instance_uid = %held.study_instance_uid,
                label = processed.label.as_deref().unwrap_or("-"),
                "instance held until its study is stable"
            );
            // Observed and held in one call: `route_stable_studies` takes a stable study with
            // its held instances, so it sees both or neither. Not held (database trouble): the
            // instance is still `received` and is processed again on a later pass.
            let member = Member {
                id: record.id.clone(),
                study_instance_uid: held.study_instance_uid,
                instance: held.instance,
                note: processed.note,
                destinations: held.destinations,
                deferred: held.deferred.iter().map(|r| r.index).collect(),
            };
            if let Err(e) = self.studies.hold(member) {
                warn!(error = %e, id = %record.id, "cannot hold instance for its study; will retry");
            }
            return;
        }
        let now = UnixMillis::now();
        match self.queue.route_instance_with_priority(
            &record.id,
            processed.label.as_deref(),
            processed.note.as_deref(),
            &processed.destinations,
            processed.priority,
            now,
        ) {
            Ok(()) => {
                info!(
                    sop_instance_uid = %record.sop_instance_uid,
                    label = processed.label.as_deref().unwrap_or("-"),
                    note = processed.note.as_deref().unwrap_or(""),
                    destinations = ?processed.destinations,
                    ms = started.elapsed().as_millis() as u64,
                    "instance routed"
                );
                metrics::histogram!("radroute_stage_seconds", "stage" => "process")
                    .record(started.elapsed().as_secs_f64());
                self.wake_forward.notify_waiters();
            }
            Err(e) => {
                warn!(error = %e, id = %record.id, "cannot record routing decision; will retry")
            }
        }
    }

    /// Processes one instance; a panic anywhere in it (decoder, model, coercion, rules) is
    /// caught: the instance is processed again without labelling, forwarded as received, with
    /// the panic in its note and `radroute_processing_failures_total{stage="panic"}` counted.
    fn process_isolated(&self, record: &InstanceRecord) -> Processed {
        let payload = match catch_unwind(AssertUnwindSafe(|| self.process(record))) {
            Ok(processed) => return processed,
            Err(payload) => payload,
        };
        let note = format!("processing panicked: {}", panic_message(payload.as_ref()));
        metrics::counter!("radroute_processing_failures_total", "stage" => "panic").increment(1);
        warn!(id = %record.id, sop_instance_uid = %record.sop_instance_uid, note,
            "processing panicked: forwarding unlabelled, as received");
        self.discard_outputs(record);
        catch_unwind(AssertUnwindSafe(|| {
            self.process_with(record, None, vec![note.clone()])
        }))
        .unwrap_or_else(|_| {
            self.discard_outputs(record);
            self.route_unread(record, note)
        })
    }

    /// Removes what an interrupted processing may have written, so the original is forwarded.
    fn discard_outputs(&self, record: &InstanceRecord) {
        if let Ok(id) = record.id.parse::<InstanceId>() {
            for kind in [FileKind::Header, FileKind::Processed] {
                if let Err(e) = self.spool.remove_kind(kind, &id) {
                    warn!(id = %record.id, error = %e, "cannot remove a partly processed file");
                }
            }
        }
    }

    /// Processes one instance with the configured labeler (panics are not caught here).
    fn process(&self, record: &InstanceRecord) -> Processed {
        self.process_with(record, self.labeler.as_deref(), Vec::new())
    }

    /// Processes one instance: labels it with `labeler`, evaluates the rules, writes the
    /// processed file; `notes` are kept in front of the ones processing adds.
    fn process_with(
        &self,
        record: &InstanceRecord,
        labeler: Option<&dyn Labeler>,
        mut notes: Vec<String>,
    ) -> Processed {
        let id = match record.id.parse::<InstanceId>() {
            Ok(id) => id,
            Err(e) => return self.route_unread(record, format!("bad instance id: {e}")),
        };
        let mut obj = match self.handoff.take(&record.id) {
            Some(obj) => obj,
            None => match self
                .spool
                .local_file(FileKind::Incoming, &id)
                .map_err(|e| e.to_string())
                .and_then(|path| {
                    OpenFileOptions::new()
                        .read_preamble(ReadPreamble::Always)
                        .open_file(path)
                        .map_err(|e| e.to_string())
                }) {
                Ok(obj) => obj,
                Err(e) => {
                    return self.route_unread(record, format!("cannot read spooled file: {e}"))
                }
            },
        };
        let mut modified = false;
        let mut outcome = LabelOutcome::default();
        let header = super::evidence::Header::of(&obj);
        if let Some(labeler) = labeler {
            outcome = labeler.label(&mut obj);
            modified |= outcome.modified;
            if let Some(note) = &outcome.note {
                notes.push(note.clone());
            }
        }
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        let arrival = Arrival::of(record);
        let decision = rules.evaluate(&RouteInput {
            attributes: &ObjectAttributes(&obj),
            label: outcome.label.as_deref(),
            confidence: outcome.confidence,
            calling_ae: &record.calling_ae,
            called_ae: &record.called_ae,
            peer: arrival.peer,
            local_time: arrival.local_time,
        });
        let evidence = super::evidence::build(
            &record.id,
            &record.calling_ae,
            header,
            &outcome,
            &decision,
            (!notes.is_empty()).then(|| notes.join("; ")),
        );
        super::evidence::record(
            self.evidence.as_deref(),
            &evidence,
            outcome.model_input_png.as_deref(),
        );
        if let Some(rule) = &decision.dropped {
            metrics::counter!("radroute_instances_dropped_total").increment(1);
            notes.push(format!("dropped by rule {}", rule.name));
            return Processed {
                priority: priority_of(decision.priority),
                label: outcome.label,
                note: Some(notes.join("; ")),
                destinations: Vec::new(),
                held: None,
            };
        }
        let mut held = None;
        if !decision.deferred_to_study.is_empty() {
            let study_uid = ObjectAttributes(&obj)
                .get(Tag {
                    group: 0x0020,
                    element: 0x000D,
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| record.sop_instance_uid.clone());
            held = Some(HeldInstance {
                study_instance_uid: study_uid,
                destinations: decision.destinations.clone(),
                instance: InstanceLabel {
                    sop_instance_uid: record.sop_instance_uid.clone(),
                    label: outcome.label.clone(),
                    confidence: outcome.confidence,
                },
                deferred: decision.deferred_to_study.clone(),
            });
        }
        if !decision.edits.is_empty() {
            match super::edits::apply(&mut obj, &decision.edits) {
                Ok(()) => modified = true,
                Err(e) => notes.push(format!("rule edits not applied: {e}")),
            }
        }
        if modified {
            // Rules never edit Pixel Data; an edit of an element after it needs a whole file.
            let pixels_untouched = super::edits::before_pixel_data(&decision.edits);
            if let Err(e) = write_processed(self.spool.as_ref(), &id, &mut obj, pixels_untouched) {
                notes.push(format!(
                    "processed file not written, forwarding the original: {e}"
                ));
            }
        }
        Processed {
            priority: priority_of(decision.priority),
            label: outcome.label,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            destinations: decision.destinations,
            held,
        }
    }

    /// Routes the studies that became stable: evaluates the study-scope routes against the
    /// study's derived body part, relabels its instances when the route asks for it, and
    /// creates the jobs of every held instance (instance-scope destinations included).
    fn route_stable_studies(&self) {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        let stable = match self.studies.take_stable(rules.study_stable_after()) {
            Ok(stable) => stable,
            Err(e) => {
                warn!(error = %e, "cannot take stable studies; will retry");
                return;
            }
        };
        if stable.is_empty() {
            return;
        }
        for taken in &stable {
            self.route_study(&rules, taken);
            if let Err(e) = self.studies.finish(taken) {
                warn!(error = %e, study_instance_uid = %taken.study.study_instance_uid,
                    "cannot finish routed study; its lease lapses and it is taken again");
            }
        }
        self.wake_forward.notify_waiters();
    }

    /// Routes one taken study: every member still `received` gets the study's destinations
    /// and edits; members already routed (a study taken again after its taker died mid-route)
    /// are left as they are.
    fn route_study(&self, rules: &RuleSet, taken: &TakenStudy) {
        let study = &taken.study;
        let decision = rules.evaluate_study(study);
        let body = study.body_part();
        info!(
            study_instance_uid = %study.study_instance_uid,
            instances = study.instances.len(),
            body_part = body.label.as_deref().unwrap_or("none"),
            destinations = ?decision.destinations,
            "study stable: routing"
        );
        metrics::counter!("radroute_studies_routed_total").increment(1);
        for member in &taken.members {
            match self.queue.instance(&member.id) {
                Ok(Some(d)) if d.instance.state == radroute_queue::InstanceState::Received => {}
                Ok(Some(_)) => continue,
                Ok(None) => {
                    warn!(id = %member.id, "held instance no longer in the queue");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, id = %member.id, "cannot read held instance; will retry");
                    continue;
                }
            }
            let mut destinations = member.destinations.clone();
            for d in &decision.destinations {
                if !destinations.contains(d) {
                    destinations.push(d.clone());
                }
            }
            let mut label = member.instance.label.clone();
            let mut note = member.note.clone();
            // The study's body part first, then the study routes' own set / remove edits
            // (a route's edit of Body Part Examined wins, as for instance routes).
            let mut edits = Vec::new();
            let relabel = body
                .label
                .as_ref()
                .filter(|l| decision.relabel_study && label.as_deref() != Some(l.as_str()));
            if let Some(study_label) = relabel {
                edits.push(radroute_route::Edit::Set {
                    tag: Tag {
                        group: 0x0018,
                        element: 0x0015,
                    },
                    value: study_label.clone(),
                });
            }
            edits.extend(decision.edits.iter().cloned());
            if !edits.is_empty() {
                match self.apply_study_edits(&member.id, &edits) {
                    Ok(()) => label = relabel.cloned().or(label),
                    Err(e) => {
                        let failed = format!("study edits not applied: {e}");
                        note = Some(match note {
                            Some(n) => format!("{n}; {failed}"),
                            None => failed,
                        });
                    }
                }
            }
            if let Err(e) = self.queue.route_instance_with_priority(
                &member.id,
                label.as_deref(),
                note.as_deref(),
                &destinations,
                priority_of(decision.priority),
                UnixMillis::now(),
            ) {
                warn!(error = %e, id = %member.id, "cannot record study routing decision; will retry");
            }
        }
    }

    /// Applies a stable study's edits (its body part, its routes' `set` / `remove`) to one held
    /// instance, on top of what processing already wrote; prior values go to the Original
    /// Attributes Sequence.
    fn apply_study_edits(&self, id: &str, edits: &[radroute_route::Edit]) -> Result<(), String> {
        let id = id.parse::<InstanceId>().map_err(|e| e.to_string())?;
        // The current coerced state: a header file, a whole processed file, or the original.
        let kind = [FileKind::Header, FileKind::Processed]
            .into_iter()
            .find(|&k| self.spool.contains(k, &id).unwrap_or(false))
            .unwrap_or(FileKind::Incoming);
        let mut obj = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .open_file(
                self.spool
                    .local_file(kind, &id)
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
        let pixels_untouched = super::edits::before_pixel_data(edits);
        if kind == FileKind::Header && !pixels_untouched {
            // A header holds nothing from Pixel Data on: join the incoming file's tail to it
            // and write a whole processed file.
            let incoming = self
                .spool
                .local_file(FileKind::Incoming, &id)
                .map_err(|e| e.to_string())?;
            super::edits::append_tail(&mut obj, &incoming)?;
        }
        super::edits::apply(&mut obj, edits)?;
        if kind == FileKind::Header && pixels_untouched {
            // Still a header: the pixels stay in the incoming file.
            let mut bytes = Vec::new();
            obj.write_all(&mut bytes).map_err(|e| e.to_string())?;
            return self
                .spool
                .put(FileKind::Header, &id, &[&bytes])
                .map_err(|e| e.to_string());
        }
        // A whole processed file exists only where a header could not be split off.
        write_processed(
            self.spool.as_ref(),
            &id,
            &mut obj,
            kind == FileKind::Incoming && pixels_untouched,
        )
    }

    /// The file cannot be read: route on what the queue knows (no attributes, no label).
    fn route_unread(&self, record: &InstanceRecord, note: String) -> Processed {
        metrics::counter!("radroute_processing_failures_total", "stage" => "read").increment(1);
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        struct NoAttributes;
        impl Attributes for NoAttributes {
            fn get(&self, _tag: Tag) -> Option<String> {
                None
            }
        }
        let arrival = Arrival::of(record);
        let decision = rules.evaluate(&RouteInput {
            attributes: &NoAttributes,
            label: None,
            confidence: None,
            calling_ae: &record.calling_ae,
            called_ae: &record.called_ae,
            peer: arrival.peer,
            local_time: arrival.local_time,
        });
        Processed {
            priority: priority_of(decision.priority),
            label: None,
            note: Some(note),
            destinations: decision.destinations,
            held: None,
        }
    }
}

/// The association and arrival inputs of routing, from what the queue recorded when the instance
/// was received: rules see the sender's address and the local time of *arrival* (docs/routing.md),
/// never the time of processing, which can be much later after a backlog, a held study or a
/// restart.
pub(crate) struct Arrival {
    pub(crate) peer: IpAddr,
    pub(crate) local_time: chrono::NaiveDateTime,
}

impl Arrival {
    pub(crate) fn of(record: &InstanceRecord) -> Arrival {
        let peer = record
            .peer_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| record.peer_addr.parse::<IpAddr>())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let local_time =
            chrono::DateTime::<chrono::Local>::from(record.received_at.to_system_time())
                .naive_local();
        Arrival { peer, local_time }
    }
}

/// An instance taken by a processing task: released when the task ends, also by a panic, so
/// it is never left marked "in progress" (skipped forever) nor counted as waiting.
struct Claim {
    in_progress: Arc<Mutex<HashSet<String>>>,
    id: String,
    backlog: Arc<super::backlog::Backlog>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.backlog.processed();
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The queue's job priority for a rule's priority action.
fn priority_of(p: radroute_route::Priority) -> i8 {
    match p {
        radroute_route::Priority::Low => -1,
        radroute_route::Priority::Medium => 0,
        radroute_route::Priority::High => 1,
    }
}

/// Writes the coerced object next to the original, as a header file when the pixels are those
/// of the incoming file (`pixels_untouched`, which processing knows from the edits it applied),
/// else as a whole processed file; removes the other kind's stale file (re-processing).
///
/// A header file holds the data set without Pixel Data and the elements after it, in the
/// received transfer syntax; the forwarder sends it followed by the incoming file's bytes from
/// Pixel Data on, so labelling a 10 MB radiograph writes kilobytes. Deflated data sets cannot be
/// spliced and are written whole, as Explicit VR Little Endian (see docs/ARCHITECTURE.md).
fn write_processed(
    spool: &dyn InstanceStore,
    id: &InstanceId,
    obj: &mut DefaultDicomObject,
    pixels_untouched: bool,
) -> Result<(), String> {
    let deflated =
        obj.meta().transfer_syntax() == radroute_forward::part10::DEFLATED_EXPLICIT_VR_LE;
    let has_pixels = matches!(obj.element_opt(tags::PIXEL_DATA), Ok(Some(_)));
    // The forwarder must find where the incoming pixels start; ask the same function it uses.
    let splittable = pixels_untouched
        && has_pixels
        && !deflated
        && spool
            .local_file(FileKind::Incoming, id)
            .is_ok_and(|incoming| {
                matches!(
                    radroute_forward::part10::splice_point(&incoming, obj.meta().transfer_syntax()),
                    Ok(Some(_))
                )
            });
    let (kind, stale) = if splittable {
        (FileKind::Header, FileKind::Processed)
    } else {
        (FileKind::Processed, FileKind::Header)
    };
    if deflated {
        obj.meta_mut().set_transfer_syntax(
            &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN,
        );
    }
    let mut bytes;
    if kind == FileKind::Header {
        // Take Pixel Data and what follows it out while writing, and put them back.
        let tail: Vec<DicomTag> = obj
            .iter()
            .map(|e| e.header().tag)
            .filter(|&t| t >= tags::PIXEL_DATA)
            .collect();
        let taken: Vec<_> = tail
            .into_iter()
            .filter_map(|t| obj.take_element(t).ok())
            .collect();
        bytes = Vec::with_capacity(64 << 10);
        let written = obj.write_all(&mut bytes).map_err(|e| e.to_string());
        for element in taken {
            obj.put(element);
        }
        written?;
    } else {
        bytes = Vec::with_capacity(16 << 20);
        obj.write_all(&mut bytes).map_err(|e| e.to_string())?;
    }
    spool.put(kind, id, &[&bytes]).map_err(|e| e.to_string())?;
    spool.remove_kind(stale, id).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
#[path = "process_liveness_tests.rs"]
mod liveness_tests;

#[cfg(test)]
#[path = "process_correctness_tests.rs"]
mod correctness_tests;

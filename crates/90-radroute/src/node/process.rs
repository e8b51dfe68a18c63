//! The processing step between "spooled" and "forwarded": label (when a labeler is configured),
//! evaluate the routing rules, write the processed file, create the forward jobs.
//!
//! Architecture invariant: processing never blocks forwarding. Whatever fails here (a file that
//! does not decode, a model error), the instance is still routed, unlabelled, with the reason in
//! its processing note and a counter.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dicom_core::Tag as DicomTag;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radroute_queue::{ForwardQueue, InstanceRecord, UnixMillis};
use radroute_route::{Attributes, RouteInput, RuleSet, Tag};
use radroute_spool::{FileKind, InstanceId, Spool};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{info, warn};

use super::label::{LabelOutcome, Labeler};

/// Route-rule view of a DICOM object.
struct ObjectAttributes<'a>(&'a DefaultDicomObject);

impl Attributes for ObjectAttributes<'_> {
    fn get(&self, tag: Tag) -> Option<String> {
        let elem = self
            .0
            .element_opt(DicomTag(tag.group, tag.element))
            .ok()
            .flatten()?;
        let value = elem.to_str().ok()?;
        Some(value.trim_end_matches(['\0', ' ']).trim().to_string())
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
    pub(crate) spool: Arc<Spool>,
    pub(crate) queue: Arc<dyn ForwardQueue>,
    pub(crate) rules: RwLock<Arc<RuleSet>>,
    pub(crate) labeler: Option<Arc<dyn Labeler>>,
    pub(crate) wake_forward: Arc<Notify>,
}

/// What processing decided for one instance.
struct Processed {
    label: Option<String>,
    note: Option<String>,
    destinations: Vec<String>,
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
        loop {
            if *stop.borrow() {
                break;
            }
            let queue = self.queue.clone();
            let pending = tokio::task::spawn_blocking(move || queue.pending_processing(256))
                .await
                .ok()
                .and_then(|r| {
                    r.map_err(|e| warn!(error = %e, "cannot read pending instances"))
                        .ok()
                })
                .unwrap_or_default();
            let fresh: Vec<InstanceRecord> = {
                let busy = in_progress.lock().unwrap_or_else(|e| e.into_inner());
                pending
                    .into_iter()
                    .filter(|r| !busy.contains(&r.id))
                    .collect()
            };
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
                let this = self.clone();
                let in_progress = in_progress.clone();
                tokio::task::spawn_blocking(move || {
                    this.process_and_route(&record);
                    in_progress
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&record.id);
                    drop(permit);
                });
            }
        }
    }

    fn process_and_route(&self, record: &InstanceRecord) {
        let started = std::time::Instant::now();
        let processed = self.process(record);
        let now = UnixMillis::now();
        match self.queue.route_instance(
            &record.id,
            processed.label.as_deref(),
            processed.note.as_deref(),
            &processed.destinations,
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

    fn process(&self, record: &InstanceRecord) -> Processed {
        let id = match record.id.parse::<InstanceId>() {
            Ok(id) => id,
            Err(e) => return self.route_unread(record, format!("bad instance id: {e}")),
        };
        let path = self.spool.path(FileKind::Incoming, &id);
        let mut obj = match OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .open_file(&path)
        {
            Ok(obj) => obj,
            Err(e) => return self.route_unread(record, format!("cannot read spooled file: {e}")),
        };
        let mut notes = Vec::new();
        let mut modified = false;
        let mut outcome = LabelOutcome::default();
        if let Some(labeler) = &self.labeler {
            outcome = labeler.label(&mut obj);
            modified |= outcome.modified;
            if let Some(note) = &outcome.note {
                notes.push(note.clone());
            }
        }
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        let peer: IpAddr = record
            .peer_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let decision = rules.evaluate(&RouteInput {
            attributes: &ObjectAttributes(&obj),
            label: outcome.label.as_deref(),
            confidence: outcome.confidence,
            calling_ae: &record.calling_ae,
            called_ae: &record.called_ae,
            peer,
            local_time: chrono::Local::now().naive_local(),
        });
        if let Some(rule) = &decision.dropped {
            metrics::counter!("radroute_instances_dropped_total").increment(1);
            notes.push(format!("dropped by rule {}", rule.name));
            return Processed {
                label: outcome.label,
                note: Some(notes.join("; ")),
                destinations: Vec::new(),
            };
        }
        if !decision.edits.is_empty() {
            match super::edits::apply(&mut obj, &decision.edits) {
                Ok(()) => modified = true,
                Err(e) => notes.push(format!("rule edits not applied: {e}")),
            }
        }
        if modified {
            if let Err(e) = write_processed(&self.spool, &id, &obj) {
                notes.push(format!(
                    "processed file not written, forwarding the original: {e}"
                ));
            }
        }
        Processed {
            label: outcome.label,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            destinations: decision.destinations,
        }
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
        let decision = rules.evaluate(&RouteInput {
            attributes: &NoAttributes,
            label: None,
            confidence: None,
            calling_ae: &record.calling_ae,
            called_ae: &record.called_ae,
            peer: IpAddr::from([0, 0, 0, 0]),
            local_time: chrono::Local::now().naive_local(),
        });
        Processed {
            label: None,
            note: Some(note),
            destinations: decision.destinations,
        }
    }
}

/// Writes the coerced object next to the original. Same transfer syntax as received, except
/// Deflated, which is written as Explicit VR Little Endian (see docs/ARCHITECTURE.md).
fn write_processed(spool: &Spool, id: &InstanceId, obj: &DefaultDicomObject) -> Result<(), String> {
    let mut obj = obj.clone();
    if obj.meta().transfer_syntax() == radroute_forward::part10::DEFLATED_EXPLICIT_VR_LE {
        obj.meta_mut().set_transfer_syntax(
            &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN,
        );
    }
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).map_err(|e| e.to_string())?;
    spool
        .store(FileKind::Processed, id, &bytes)
        .map_err(|e| e.to_string())?;
    Ok(())
}

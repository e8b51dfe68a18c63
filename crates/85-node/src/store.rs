//! The SCP's store handler: validate, spool (fsync), queue (commit), then answer.
//!
//! Single node, the spool file is written while the data set arrives ([`SpoolSink`], the SCP's
//! write-behind): into `tmp/`, with early writeback, so that once the data set is complete and
//! checked only the final `fsync`, the rename and the directory `fsync` remain. An instance that
//! is refused or whose association ends mid-data-set leaves nothing (its temporary file is
//! removed; one left by a crash is removed when the spool opens).
//!
//! Architecture invariant: success is returned only after the Part-10 file and its directory are
//! fsynced and the queue row is committed. A data set that does not parse is refused with C000;
//! a node that cannot store (disk full, I/O error, low-space watermark, queue error) answers A700
//! so the modality keeps the image and retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dicom_core::{DataElement, PrimitiveValue};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTable, FileMetaTableBuilder};
use radroute_dimse::Status;
use radroute_queue::{ForwardQueue, NewInstance, UnixMillis};
use radroute_receive::{
    DataSetSink, IncomingInstance, InstanceStart, StoreHandler, StoreResult, Streamed,
};
use radroute_spool::{FileKind, InstanceId, InstanceStore, PutStream};
use tokio::sync::Notify;
use tracing::warn;

use super::handoff::Handoff;
use super::telemetry::record;
use radroute_dataset::attr::text;

/// Implementation Class UID radroute writes into the file meta of spooled files (2.25 UUID form).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.229081519131312346157624302186955372547";
/// Implementation Version Name written next to it.
pub const IMPLEMENTATION_VERSION_NAME: &str = "RADROUTE_0_1";

/// Makes a received instance durable in one step: its bytes and its queue row commit together
/// or not at all (cluster mode: `radroute_store_postgres::PgStore::put_with` running the
/// queue's `insert_instance` in the same PostgreSQL transaction). Without it the store step
/// writes the spool file (fsynced), then commits the queue row, and removes the file if that
/// fails. Called from a blocking thread; `Ok` means committed.
pub trait Ingest: Send + Sync {
    /// Stores `parts` (file meta, then the data set) as the incoming object of `id` together
    /// with the queue row `row`.
    fn ingest(
        &self,
        id: &InstanceId,
        parts: &[&[u8]],
        row: &NewInstance,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Stores received instances durably and wakes the processing step.
pub struct SpoolingHandler {
    /// Audit trail: an "instances transferred" message for each instance stored.
    pub(crate) audit: Arc<radroute_audit::Audit>,
    pub(crate) spool: Arc<dyn InstanceStore>,
    pub(crate) queue: Arc<dyn ForwardQueue>,
    /// Cluster mode: stores bytes and queue row in one transaction instead of `spool` then
    /// `queue` (see [`Ingest`]).
    pub(crate) ingest: Option<Arc<dyn Ingest>>,
    pub(crate) wake_processing: Arc<Notify>,
    /// Disk watermark; an atomic so a configuration reload can change it.
    pub(crate) min_free_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Parsed instances for the processing step, so it need not read them back.
    pub(crate) handoff: Arc<super::handoff::Handoff>,
    /// Instances waiting for processing (flow control).
    pub(crate) backlog: Arc<super::backlog::Backlog>,
    /// `[node] max_unprocessed`; an atomic so a configuration reload can change it.
    pub(crate) max_unprocessed: Arc<std::sync::atomic::AtomicUsize>,
    /// Largest inflated size of a Deflated data set (bytes; `[node] max_instance_mb`).
    pub(crate) max_inflated: usize,
    /// `[node] store_timeout_secs`: past it a C-STORE still waiting for storage is refused.
    pub(crate) store_timeout: std::time::Duration,
}

/// The spool file of an instance being received, written while its data set arrives (see the
/// module documentation). Opened on its first write, which runs on a blocking thread.
pub struct SpoolSink {
    store: Arc<dyn InstanceStore>,
    id: InstanceId,
    meta: FileMetaTable,
    /// Preamble, `DICM` and the file meta group: the file's first bytes.
    header: Vec<u8>,
    /// The disk watermark: below it nothing is written ahead (the store step refuses anyway).
    min_free: u64,
    put: Option<Box<dyn PutStream>>,
}

impl SpoolSink {
    /// The spool file's stream, begun (with the file's first bytes) on the first write.
    fn put(&mut self) -> Result<&mut Box<dyn PutStream>, String> {
        if self.put.is_none() {
            if self.min_free > 0 {
                let free = self.store.free_bytes().map_err(|e| e.to_string())?;
                if free < self.min_free {
                    return Err(format!(
                        "spool below free-space watermark ({} MiB free)",
                        free >> 20
                    ));
                }
            }
            let mut put = self
                .store
                .begin_put(FileKind::Incoming, &self.id)
                .map_err(|e| e.to_string())?;
            put.write(&self.header).map_err(|e| e.to_string())?;
            self.put = Some(put);
        }
        self.put
            .as_mut()
            .ok_or_else(|| "spool stream not begun".to_string())
    }
}

impl DataSetSink for SpoolSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.put()?.write(bytes).map_err(|e| e.to_string())
    }

    fn write_parts(&mut self, parts: &[Vec<u8>]) -> Result<(), String> {
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.put()?.write_parts(&parts).map_err(|e| e.to_string())
    }
}

impl StoreHandler for SpoolingHandler {
    type Sink = SpoolSink;

    fn begin(&self, start: &InstanceStart<'_>) -> Option<SpoolSink> {
        // Cluster mode commits bytes and queue row in one transaction: nothing to write ahead.
        if self.ingest.is_some() {
            return None;
        }
        let (meta, header) = file_meta(
            start.sop_class_uid,
            start.sop_instance_uid,
            start.transfer_syntax,
            &start.association.calling_ae,
        )
        .ok()?;
        Some(SpoolSink {
            store: self.spool.clone(),
            id: InstanceId::generate(),
            meta,
            header,
            min_free: self
                .min_free_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
            put: None,
        })
    }

    async fn store(
        &self,
        instance: IncomingInstance,
        streamed: Option<Streamed<SpoolSink>>,
    ) -> StoreResult {
        let spool = self.spool.clone();
        let queue = self.queue.clone();
        let ingest = self.ingest.clone();
        let handoff = self.handoff.clone();
        let audit = self.audit.clone();
        let max_inflated = self.max_inflated;
        let min_free = self
            .min_free_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        // Set when the answer went out without this store: its blocking step must not queue
        // the instance afterwards (a hung disk answers late, if ever).
        let abandoned = Arc::new(AtomicBool::new(false));
        let gave_up = abandoned.clone();
        let task = tokio::task::spawn_blocking(move || {
            store_blocking(
                spool.as_ref(),
                queue.as_ref(),
                ingest.as_deref(),
                &handoff,
                &audit,
                Limits {
                    min_free,
                    max_inflated,
                },
                instance,
                streamed,
                &gave_up,
            )
        });
        let result = match tokio::time::timeout(self.store_timeout, task).await {
            Ok(joined) => joined.unwrap_or_else(|e| {
                StoreResult::failure(Status::OUT_OF_RESOURCES, format!("store task failed: {e}"))
            }),
            Err(_) => {
                abandoned.store(true, Ordering::SeqCst);
                metrics::counter!("radroute_store_refused_total", "reason" => "storage_timeout")
                    .increment(1);
                warn!(
                    timeout_s = self.store_timeout.as_secs(),
                    "storage did not answer in time: C-STORE refused, the write goes on unacknowledged"
                );
                StoreResult::failure(
                    Status::OUT_OF_RESOURCES,
                    format!(
                        "storage did not answer within {} s",
                        self.store_timeout.as_secs()
                    ),
                )
            }
        };
        if result.status.is_stored() {
            self.backlog.stored();
            self.wake_processing.notify_one();
            // Stored and fsynced already; past the limit, the response waits for processing to
            // catch up (see node/backlog.rs).
            let limit = self
                .max_unprocessed
                .load(std::sync::atomic::Ordering::Relaxed);
            // Hold while more than `limit` wait, that is until fewer than limit + 1 do.
            let bound = if limit == 0 { 0 } else { limit + 1 };
            let held = self
                .backlog
                .wait_below(bound, super::backlog::MAX_PACING)
                .await;
            if !held.is_zero() {
                metrics::histogram!("radroute_stage_seconds", "stage" => "store_paced")
                    .record(held.as_secs_f64());
            }
        }
        result
    }
}

/// The store step's limits from `[node]`.
struct Limits {
    /// Disk watermark (bytes; 0: none).
    min_free: u64,
    /// Largest inflated size of a Deflated data set (bytes).
    max_inflated: usize,
}

/// What a store step whose C-STORE was answered without it (`abandoned`) does before the
/// instance would become visible: undoes what it wrote and reports the refusal.
fn refuse_abandoned(spool: &dyn InstanceStore, id: Option<&InstanceId>) -> StoreResult {
    if let Some(id) = id {
        if let Err(e) = spool.remove(id) {
            warn!(error = %e, id = %id, "cannot remove the file of a store refused for its timeout");
        }
    }
    metrics::counter!("radroute_store_abandoned_total", "when" => "before_commit").increment(1);
    StoreResult::failure(Status::OUT_OF_RESOURCES, "storage did not answer in time")
}

// Each argument is one of the handler's shared parts; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn store_blocking(
    spool: &dyn InstanceStore,
    queue: &dyn ForwardQueue,
    ingest: Option<&dyn Ingest>,
    handoff: &Handoff,
    audit: &radroute_audit::Audit,
    Limits {
        min_free,
        max_inflated,
    }: Limits,
    instance: IncomingInstance,
    streamed: Option<Streamed<SpoolSink>>,
    abandoned: &AtomicBool,
) -> StoreResult {
    // Where the time after the last byte goes (radroute_stage_seconds): parse and checks, the
    // durable write (its rest, with write-behind), the queue row.
    let started = std::time::Instant::now();
    if min_free > 0 {
        match spool.free_bytes() {
            Ok(free) if free < min_free => {
                metrics::counter!("radroute_store_refused_total", "reason" => "low_disk")
                    .increment(1);
                return StoreResult::failure(
                    Status::OUT_OF_RESOURCES,
                    format!("spool below free-space watermark ({} MiB free)", free >> 20),
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot read spool free space"),
        }
    }
    // Walk the data set's headers, inflate a Deflated one (at most `max_instance_mb`), then
    // parse: what radroute cannot read, it must not acknowledge. Native Pixel Data at the end is
    // raw bytes whose length the walk checked: only the header is parsed and the pixels are
    // handed on as received (below), without a 10 MB copy into the object.
    let received = match radroute_dataset::read_received(
        &instance.data,
        &instance.transfer_syntax,
        max_inflated,
    ) {
        Ok(received) => received,
        Err(radroute_dataset::ReadError::Busy) => {
            metrics::counter!("radroute_store_refused_total", "reason" => "inflate_busy")
                .increment(1);
            return StoreResult::failure(
                Status::OUT_OF_RESOURCES,
                "busy inflating another deflated data set",
            );
        }
        Err(e) => {
            metrics::counter!("radroute_store_refused_total", "reason" => "unparseable")
                .increment(1);
            return StoreResult::failure(
                Status::CANNOT_UNDERSTAND,
                format!("data set does not parse: {e}"),
            );
        }
    };
    record::stage("store_parse", started.elapsed().as_secs_f64());
    // Held to the end of the store: the next deflated data set waits for this one's object.
    let _inflating = received.inflating;
    let (mut obj, native) = (received.object, received.native);
    let sop_instance_uid = text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    if sop_instance_uid != instance.sop_instance_uid {
        metrics::counter!("radroute_store_refused_total", "reason" => "uid_mismatch").increment(1);
        return StoreResult::failure(
            Status::DATASET_MISMATCH,
            "SOP Instance UID in the data set differs from the C-STORE request",
        );
    }
    // The data set written while it arrived, all of it; otherwise it is written below.
    let streamed = match streamed {
        Some(Ok(sink)) => match &sink.put {
            Some(put) if put.written() == (sink.header.len() + instance.data.len()) as u64 => {
                Some(sink)
            }
            _ => {
                warn!(sop_instance_uid = %instance.sop_instance_uid, "write-behind incomplete: writing the data set now");
                None
            }
        },
        Some(Err(e)) => {
            warn!(error = %e, sop_instance_uid = %instance.sop_instance_uid, "write-behind failed: writing the data set now");
            None
        }
        None => None,
    };
    let (id, meta, header, mut put) = match streamed {
        Some(sink) => (sink.id, sink.meta, sink.header, sink.put),
        None => match file_meta(
            &instance.sop_class_uid,
            &instance.sop_instance_uid,
            &instance.transfer_syntax,
            &instance.association.calling_ae,
        ) {
            Ok((meta, header)) => (InstanceId::generate(), meta, header, None),
            Err(e) => return StoreResult::failure(Status::CANNOT_UNDERSTAND, e),
        },
    };
    let mut data = instance.data;
    if data.len() % 2 == 1 {
        // Some senders end deflated data sets on an odd byte; Part-10 values stay even.
        data.push(0);
        let padded = put.as_mut().map(|put| put.write(&[0]));
        if let Some(Err(e)) = padded {
            warn!(error = %e, "write-behind failed: writing the data set now");
            // Dropping the stream removes its temporary file.
            put = None;
        }
    }
    let bytes = (header.len() + data.len()) as u64;
    let study_instance_uid = text(&obj, tags::STUDY_INSTANCE_UID);
    let row = NewInstance {
        id: id.as_str().to_string(),
        sop_instance_uid: instance.sop_instance_uid.clone(),
        sop_class_uid: instance.sop_class_uid.clone(),
        transfer_syntax: instance.transfer_syntax.clone(),
        study_instance_uid: study_instance_uid.clone(),
        calling_ae: instance.association.calling_ae.clone(),
        called_ae: instance.association.called_ae.clone(),
        peer_addr: instance.association.peer.to_string(),
        received_at: UnixMillis::now(),
        bytes,
    };
    // Cluster mode: bytes and queue row in one transaction, committed before the answer.
    // Single node: the spool file (fsynced), then the queue row below.
    let writing = std::time::Instant::now();
    let write_behind = put.is_some();
    if abandoned.load(Ordering::SeqCst) {
        // Dropping the write-behind removes its temporary file.
        return refuse_abandoned(spool, None);
    }
    let stored = match ingest {
        Some(ingest) => ingest
            .ingest(&id, &[&header, &data], &row)
            .map_err(|e| e.to_string()),
        None => match put {
            // Written while it arrived: only the final fsync, rename and directory fsync remain.
            Some(put) => put.commit(spool).map_err(|e| e.to_string()),
            None => spool
                .put(FileKind::Incoming, &id, &[&header, &data])
                .map_err(|e| e.to_string()),
        },
    };
    if let Err(e) = stored {
        metrics::counter!("radroute_store_refused_total", "reason" => "spool_error").increment(1);
        warn!(error = %e, sop_instance_uid = %instance.sop_instance_uid, "spool write failed");
        return StoreResult::failure(Status::OUT_OF_RESOURCES, format!("cannot store: {e}"));
    }
    record::stage(
        if write_behind {
            "store_write_rest"
        } else {
            "store_write"
        },
        writing.elapsed().as_secs_f64(),
    );
    // Read before the object moves on; sent only once the instance is acknowledged.
    let audited = audit.is_sending().then(|| {
        (
            radroute_audit::Peer {
                ae_title: instance.association.calling_ae.clone(),
                address: Some(instance.association.peer.ip().to_string()),
            },
            radroute_audit::InstanceRef {
                study_instance_uid: study_instance_uid.clone().unwrap_or_default(),
                sop_class_uid: instance.sop_class_uid.clone(),
                sop_instance_uid: instance.sop_instance_uid.clone(),
                accession_number: text(&obj, tags::ACCESSION_NUMBER),
                patient_id: Some(text(&obj, tags::PATIENT_ID).unwrap_or_default()),
                patient_name: text(&obj, tags::PATIENT_NAME),
            },
        )
    });
    let held = data.len();
    if let Some(n) = native {
        // The received buffer becomes the Pixel Data value: shift the pixels to its start
        // (within the buffer, no new allocation).
        data.drain(..n.value);
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            n.vr,
            PrimitiveValue::from(data),
        ));
    } else {
        drop(data);
    }
    // Offered before the queue commit makes the instance visible to the processing step
    // (single node; after an ingest's commit, a processing step that is quicker than the
    // offer reads the store's local copy instead).
    if ingest.is_none() && abandoned.load(Ordering::SeqCst) {
        // The file is durable but not queued: nothing refers to it, it goes.
        return refuse_abandoned(spool, Some(&id));
    }
    let queueing = std::time::Instant::now();
    let offered = handoff.offer(id.as_str(), obj.with_exact_meta(meta), held);
    if ingest.is_some() {
        // Already committed with the bytes.
    } else if let Err(e) = queue.add_instance(&row) {
        warn!(error = %e, sop_instance_uid = %instance.sop_instance_uid, "queue insert failed");
        // Not acknowledged: the file must not linger as an orphan.
        let _ = spool.remove(&id);
        if offered {
            handoff.discard(id.as_str());
        }
        metrics::counter!("radroute_store_refused_total", "reason" => "queue_error").increment(1);
        return StoreResult::failure(Status::OUT_OF_RESOURCES, format!("cannot queue: {e}"));
    }
    record::stage("store_queue", queueing.elapsed().as_secs_f64());
    if abandoned.load(Ordering::SeqCst) {
        // Committed while its C-STORE was being refused: it will be forwarded, and the sender
        // may send it again (at-least-once, as a lost response).
        metrics::counter!("radroute_store_abandoned_total", "when" => "after_commit").increment(1);
        warn!(sop_instance_uid = %instance.sop_instance_uid, "stored after its C-STORE was refused for the storage timeout: it may reach destinations twice");
    }
    metrics::counter!("radroute_bytes_received_total").increment(bytes);
    if let Some((peer, instance)) = audited {
        audit.instance_received(&peer, &instance);
    }
    StoreResult::success()
}

/// The file meta group radroute writes for a received instance, and the file's first bytes
/// (preamble, `DICM`, the group): known from the C-STORE-RQ and the presentation context alone,
/// so the write-behind can start before the data set arrives.
fn file_meta(
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax: &str,
    calling_ae: &str,
) -> Result<(FileMetaTable, Vec<u8>), String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class_uid)
        .media_storage_sop_instance_uid(sop_instance_uid)
        .transfer_syntax(transfer_syntax)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(calling_ae)
        .build()
        .map_err(|e| format!("cannot build file meta: {e}"))?;
    let mut header = vec![0u8; 128];
    header.extend_from_slice(b"DICM");
    meta.write(&mut header)
        .map_err(|e| format!("cannot write file meta: {e}"))?;
    Ok((meta, header))
}

#[cfg(test)]
#[path = "store_timeout_tests.rs"]
mod store_timeout_tests;

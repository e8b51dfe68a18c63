//! The SCP's store handler: validate, spool (fsync), queue (commit), then answer.
//!
//! Architecture invariant: success is returned only after the Part-10 file and its directory are
//! fsynced and the queue row is committed. A data set that does not parse is refused with C000;
//! a node that cannot store (disk full, I/O error, low-space watermark, queue error) answers A700
//! so the modality keeps the image and retries.

use std::sync::Arc;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use radroute_dimse::Status;
use radroute_queue::{ForwardQueue, NewInstance, UnixMillis};
use radroute_receive::{IncomingInstance, StoreHandler, StoreResult};
use radroute_spool::{FileKind, InstanceId, Spool};
use tokio::sync::Notify;
use tracing::warn;

/// Implementation Class UID radroute writes into the file meta of spooled files (2.25 UUID form).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.229081519131312346157624302186955372547";
/// Implementation Version Name written next to it.
pub const IMPLEMENTATION_VERSION_NAME: &str = "RADROUTE_0_1";

/// Stores received instances durably and wakes the processing step.
pub struct SpoolingHandler {
    pub(crate) spool: Arc<Spool>,
    pub(crate) queue: Arc<dyn ForwardQueue>,
    pub(crate) wake_processing: Arc<Notify>,
    /// Disk watermark; an atomic so a configuration reload can change it.
    pub(crate) min_free_bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl StoreHandler for SpoolingHandler {
    async fn store(&self, instance: IncomingInstance) -> StoreResult {
        let spool = self.spool.clone();
        let queue = self.queue.clone();
        let min_free = self
            .min_free_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let result = tokio::task::spawn_blocking(move || {
            store_blocking(&spool, queue.as_ref(), min_free, instance)
        })
        .await
        .unwrap_or_else(|e| {
            StoreResult::failure(Status::OUT_OF_RESOURCES, format!("store task failed: {e}"))
        });
        if result.status.is_stored() {
            self.wake_processing.notify_one();
        }
        result
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    let value = value.trim_end_matches(['\0', ' ']).trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// True when an element (or an item or pixel fragment) declares a defined length longer than the
/// bytes left in the data set, or when encapsulated Pixel Data has no Sequence Delimitation Item:
/// it is truncated or garbled, and can never be read.
///
/// Checked before parsing because dicom-parser 0.10 allocates and zero-fills a value's declared
/// length before reading it: one garbled header in a 38 KB data set cost 1.3 GB of memory and
/// 15-60 s of CPU per store. dicom-parser also accepts encapsulated Pixel Data whose last
/// fragment is cut short, which destinations then refuse forever. Only headers are read; on
/// anything the walk does not understand it returns false and leaves the verdict to the parser.
fn declares_length_beyond_data(data: &[u8], ts: &dicom_encoding::TransferSyntax) -> bool {
    use dicom_core::VR;
    const DEFLATED: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"];
    if DEFLATED.contains(&ts.uid()) {
        return false;
    }
    let Some(decoder) = ts.decoder_for::<&[u8]>() else {
        return false;
    };
    let mut rest = data;
    let mut in_fragments = false;
    while rest.len() >= 8 {
        let Ok((header, _)) = decoder.decode_header(&mut rest) else {
            return false;
        };
        let len = header.len.get().map(|n| n as usize);
        if header.tag.group() == 0xFFFE {
            match (header.tag.element(), len) {
                // An item: a pixel fragment is skipped, a sequence item is walked into.
                (0xE000, Some(n)) if n > rest.len() => return true,
                (0xE000, Some(n)) if in_fragments => rest = &rest[n..],
                (0xE0DD, _) => in_fragments = false,
                _ => {}
            }
            continue;
        }
        match len {
            Some(n) if n > rest.len() => return true,
            // Walk into sequences; skip every other value.
            Some(_) if header.vr == VR::SQ => {}
            Some(n) => rest = &rest[n..],
            None if header.vr == VR::SQ => {}
            None if header.tag == tags::PIXEL_DATA => in_fragments = true,
            // Undefined length elsewhere (e.g. UN holding implicit VR): not ours to judge.
            None => return false,
        }
    }
    // Encapsulated Pixel Data must end with its Sequence Delimitation Item.
    in_fragments
}

fn store_blocking(
    spool: &Spool,
    queue: &dyn ForwardQueue,
    min_free: u64,
    instance: IncomingInstance,
) -> StoreResult {
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
    let Some(ts) = TransferSyntaxRegistry.get(&instance.transfer_syntax) else {
        return StoreResult::failure(Status::CANNOT_UNDERSTAND, "unknown transfer syntax");
    };
    if declares_length_beyond_data(&instance.data, ts) {
        metrics::counter!("radroute_store_refused_total", "reason" => "unparseable").increment(1);
        return StoreResult::failure(
            Status::CANNOT_UNDERSTAND,
            "data set does not parse: an element or fragment is longer than the data received",
        );
    }
    // Parse the whole data set: what radroute cannot read, it must not acknowledge.
    let obj = match InMemDicomObject::read_dataset_with_ts(&instance.data[..], ts) {
        Ok(obj) => obj,
        Err(e) => {
            metrics::counter!("radroute_store_refused_total", "reason" => "unparseable")
                .increment(1);
            return StoreResult::failure(
                Status::CANNOT_UNDERSTAND,
                format!("data set does not parse: {e}"),
            );
        }
    };
    let sop_instance_uid = text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    if sop_instance_uid != instance.sop_instance_uid {
        metrics::counter!("radroute_store_refused_total", "reason" => "uid_mismatch").increment(1);
        return StoreResult::failure(
            Status::DATASET_MISMATCH,
            "SOP Instance UID in the data set differs from the C-STORE request",
        );
    }
    let meta = match FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(instance.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(instance.sop_instance_uid.as_str())
        .transfer_syntax(instance.transfer_syntax.as_str())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(instance.association.calling_ae.as_str())
        .build()
    {
        Ok(meta) => meta,
        Err(e) => {
            return StoreResult::failure(
                Status::CANNOT_UNDERSTAND,
                format!("cannot build file meta: {e}"),
            )
        }
    };
    let mut header = vec![0u8; 128];
    header.extend_from_slice(b"DICM");
    if let Err(e) = meta.write(&mut header) {
        return StoreResult::failure(
            Status::CANNOT_UNDERSTAND,
            format!("cannot write file meta: {e}"),
        );
    }
    let mut data = instance.data;
    if data.len() % 2 == 1 {
        // Some senders end deflated data sets on an odd byte; Part-10 values stay even.
        data.push(0);
    }
    let id = InstanceId::generate();
    let bytes = (header.len() + data.len()) as u64;
    if let Err(e) = spool.store_parts(FileKind::Incoming, &id, &[&header, &data]) {
        metrics::counter!("radroute_store_refused_total", "reason" => "spool_error").increment(1);
        warn!(error = %e, sop_instance_uid = %instance.sop_instance_uid, "spool write failed");
        return StoreResult::failure(Status::OUT_OF_RESOURCES, format!("cannot store: {e}"));
    }
    let row = NewInstance {
        id: id.as_str().to_string(),
        sop_instance_uid: instance.sop_instance_uid.clone(),
        sop_class_uid: instance.sop_class_uid.clone(),
        transfer_syntax: instance.transfer_syntax.clone(),
        study_instance_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        calling_ae: instance.association.calling_ae.clone(),
        called_ae: instance.association.called_ae.clone(),
        peer_addr: instance.association.peer.to_string(),
        received_at: UnixMillis::now(),
        bytes,
    };
    if let Err(e) = queue.add_instance(&row) {
        warn!(error = %e, sop_instance_uid = %instance.sop_instance_uid, "queue insert failed");
        // Not acknowledged: the file must not linger as an orphan.
        let _ = spool.remove(&id);
        metrics::counter!("radroute_store_refused_total", "reason" => "queue_error").increment(1);
        return StoreResult::failure(Status::OUT_OF_RESOURCES, format!("cannot queue: {e}"));
    }
    metrics::counter!("radroute_bytes_received_total").increment(bytes);
    StoreResult::success()
}

#[cfg(test)]
mod tests {
    use super::declares_length_beyond_data;
    use dicom_transfer_syntax_registry::entries::{
        EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        let len = declared.unwrap_or(value.len() as u32);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn item(element: u16, len: u32, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn well_formed_data_sets_pass() {
        let ts = EXPLICIT_VR_LITTLE_ENDIAN.erased();
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        // A sequence of undefined length with one item.
        data.extend(explicit((0x0008, 0x1140), b"SQ", &[], Some(u32::MAX)));
        data.extend(item(
            0xE000,
            u32::MAX,
            &explicit((0x0008, 0x1155), b"UI", b"1.2\0\0", None),
        ));
        data.extend(item(0xE00D, 0, &[]));
        data.extend(item(0xE0DD, 0, &[]));
        // Encapsulated pixel data: empty offset table, one fragment.
        data.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        data.extend(item(0xE0DD, 0, &[]));
        assert!(!declares_length_beyond_data(&data, &ts));

        let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let mut data = Vec::new();
        data.extend_from_slice(&[0x08, 0, 0x18, 0, 4, 0, 0, 0]);
        data.extend_from_slice(b"1.2\0");
        assert!(!declares_length_beyond_data(&data, &ts));
    }

    #[test]
    fn lengths_beyond_the_data_are_caught() {
        let ts = EXPLICIT_VR_LITTLE_ENDIAN.erased();
        // Native pixel data declared longer than what follows.
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[0; 16], Some(8192)));
        assert!(declares_length_beyond_data(&data, &ts));
        // A pixel fragment cut short.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 65536, &[0; 100]));
        assert!(declares_length_beyond_data(&data, &ts));
        // Fragments complete, sequence delimiter missing.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        assert!(declares_length_beyond_data(&data, &ts));
    }
}

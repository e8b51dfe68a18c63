//! The store step's read of a received data set: walk, inflate with a bound, then parse.
//!
//! One function for the daemon's store step and the fuzz targets, so what is fuzzed is what
//! runs. Deflated data sets are inflated once, up to a cap, walked as Explicit VR Little Endian
//! and parsed from the inflated bytes; one inflation runs at a time in the process, so their
//! memory is one cap, not one per association.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTable, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::check::check;
use crate::inflate::inflate_bounded;
use crate::pixels::{native_pixels_at_end, NativePixels};
use crate::syntax::is_deflated;
use crate::walk::Refusal;

/// A received data set, parsed.
#[derive(Debug)]
pub struct Received {
    /// The data set, without Pixel Data when `native` is set.
    pub object: InMemDicomObject,
    /// Native Pixel Data at the end of the received bytes, left out of `object`: its value is
    /// `data[native.value..]` of the bytes given to [`read_received`].
    pub native: Option<NativePixels>,
    /// Held while the object of an inflated data set is alive in the store step: the next
    /// inflation waits for it (see [`INFLATE_WAIT`]).
    pub inflating: Option<MutexGuard<'static, ()>>,
}

/// Why a received data set cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The walk refuses it: reading it would allocate beyond its bytes, or it is cut short.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The transfer syntax is not one radroute knows.
    #[error("unknown transfer syntax {0}")]
    UnknownSyntax(String),
    /// The parser failed.
    #[error("{0}")]
    Parse(String),
    /// Another Deflated data set was being inflated for longer than [`INFLATE_WAIT`].
    #[error("busy inflating another deflated data set")]
    Busy,
    /// Not a Part-10 file (no preamble, `DICM` or file meta group).
    #[error("not a DICOM Part-10 file: {0}")]
    NotPart10(String),
}

/// How long a Deflated data set waits for the one running inflation before it is answered as
/// busy (the sender retries later).
pub const INFLATE_WAIT: Duration = Duration::from_secs(20);

static INFLATING: Mutex<()> = Mutex::new(());

/// Reads a data set received in `ts_uid`: walks it ([`check`]), inflates it first when deflated
/// (at most `max_inflated` bytes), then parses it. Native Pixel Data at the end is left out of
/// the object (see [`Received::native`]). Nothing is allocated from a declared length that the
/// walk has not checked against the bytes present.
pub fn read_received(
    data: &[u8],
    ts_uid: &str,
    max_inflated: usize,
) -> Result<Received, ReadError> {
    let ts_uid = ts_uid.trim_end_matches(['\0', ' ']);
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| ReadError::UnknownSyntax(ts_uid.to_string()))?;
    if is_deflated(ts_uid) {
        let guard = wait_for_inflation()?;
        let inflated = inflate_bounded(data, max_inflated)?;
        let explicit = EXPLICIT_VR_LITTLE_ENDIAN.erased();
        check(&inflated, &explicit)?;
        let object = InMemDicomObject::read_dataset_with_ts(&inflated[..], &explicit)
            .map_err(|e| ReadError::Parse(e.to_string()))?;
        return Ok(Received {
            object,
            native: None,
            inflating: Some(guard),
        });
    }
    check(data, ts)?;
    let native = native_pixels_at_end(data, ts_uid);
    let header = native.map_or(data, |n| &data[..n.element]);
    let object = InMemDicomObject::read_dataset_with_ts(header, ts)
        .map_err(|e| ReadError::Parse(e.to_string()))?;
    Ok(Received {
        object,
        native,
        inflating: None,
    })
}

/// Reads a Part-10 file's bytes as the store step reads a received data set: the file meta
/// group walked and parsed, then the data set by [`read_received`] in the meta's transfer
/// syntax. Returns the meta and the data set.
pub fn read_part10(
    file: &[u8],
    max_inflated: usize,
) -> Result<(FileMetaTable, Received), ReadError> {
    let not_part10 = |why: &str| ReadError::NotPart10(why.to_string());
    let offset = part10_dataset_offset(file)
        .ok_or_else(|| not_part10("no DICM prefix and file meta group length"))?;
    if offset > file.len() {
        return Err(not_part10("file meta group longer than the file"));
    }
    let meta_bytes = &file[132..];
    let meta_end = offset - 132;
    let explicit = EXPLICIT_VR_LITTLE_ENDIAN.erased();
    check(&meta_bytes[..meta_end], &explicit)?;
    // dicom-object reads the meta from its `DICM` prefix.
    let meta = FileMetaTable::from_reader(&file[128..132 + meta_end])
        .map_err(|e| not_part10(&e.to_string()))?;
    let ts = meta.transfer_syntax().to_string();
    let received = read_received(&meta_bytes[meta_end..], &ts, max_inflated)?;
    Ok((meta, received))
}

/// Offset of the data set in a Part-10 file: after the 128-byte preamble, `DICM` and the file
/// meta group, whose length (0002,0000) UL must be its first element. `None` when the first 144
/// bytes are not that; the offset may lie past the end of `file` (the caller checks).
pub fn part10_dataset_offset(file: &[u8]) -> Option<usize> {
    match file.get(128..144)? {
        [b'D', b'I', b'C', b'M', 0x02, 0x00, 0x00, 0x00, b'U', b'L', _, _, a, b, c, d] => {
            144usize.checked_add(u32::from_le_bytes([*a, *b, *c, *d]) as usize)
        }
        _ => None,
    }
}

/// Waits up to [`INFLATE_WAIT`] for the running inflation to end.
fn wait_for_inflation() -> Result<MutexGuard<'static, ()>, ReadError> {
    let deadline = Instant::now() + INFLATE_WAIT;
    loop {
        match INFLATING.try_lock() {
            Ok(guard) => return Ok(guard),
            // A panic while inflating leaves nothing half-done behind the lock.
            Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::sync::TryLockError::WouldBlock) => return Err(ReadError::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_part10, read_received, ReadError};
    use crate::check::tests::{explicit, un_of_undefined_length};
    use crate::walk::Refusal;
    use std::io::Write;

    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn deflated_data_sets_are_inflated_and_walked() {
        let mut plain = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        plain.extend(explicit((0x7FE0, 0x0010), b"OW", &[0; 64], None));
        let read = read_received(&deflate(&plain), DEFLATED, 1 << 20).unwrap();
        assert!(read.inflating.is_some());
        assert_eq!(
            read.object
                .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap(),
            "1.2.3.4"
        );
        drop(read);
        // Issue 10: a deflated data set was not walked at all; the parser inflated it and
        // zero-filled whatever the inflated headers declared.
        let bomb = deflate(&un_of_undefined_length());
        assert!(matches!(
            read_received(&bomb, DEFLATED, 1 << 20),
            Err(ReadError::Refused(Refusal::TooLong { .. }))
        ));
        let mut declared = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        declared.extend(explicit((0x0009, 0x1010), b"OB", &[], Some(0xF000_0000)));
        assert!(matches!(
            read_received(&deflate(&declared), DEFLATED, 1 << 20),
            Err(ReadError::Refused(Refusal::TooLong { .. }))
        ));
    }

    #[test]
    fn inflate_bombs_stop_at_the_cap() {
        // 64 MiB of zeros in one OB value: about 64 KB deflated.
        let mut plain = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        plain.extend(explicit((0x0009, 0x1010), b"OB", &[], Some(64 << 20)));
        plain.resize(plain.len() + (64 << 20), 0);
        let bomb = deflate(&plain);
        assert!(bomb.len() < 100 << 10, "{}", bomb.len());
        assert!(matches!(
            read_received(&bomb, DEFLATED, 8 << 20),
            Err(ReadError::Refused(Refusal::InflatesTooLarge { .. }))
        ));
    }

    #[test]
    fn native_pixels_are_left_out_and_part10_files_read() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[1, 0, 2, 0], None));
        let read = read_received(&data, "1.2.840.10008.1.2.1", 0).unwrap();
        assert_eq!(read.native.map(|n| n.value), Some(data.len() - 4));
        assert!(read
            .object
            .element_opt(dicom_dictionary_std::tags::PIXEL_DATA)
            .unwrap()
            .is_none());

        let meta = dicom_object::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .implementation_class_uid("2.25.1")
            .build()
            .unwrap();
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        meta.write(&mut file).unwrap();
        file.extend_from_slice(&data);
        let (meta, read) = read_part10(&file, 0).unwrap();
        assert_eq!(meta.transfer_syntax(), "1.2.840.10008.1.2.1");
        assert!(read.native.is_some());
        // A meta element declaring more than the file holds is refused before it is read.
        let mut bad = file[..144].to_vec();
        bad.extend(explicit((0x0002, 0x0001), b"OB", &[], Some(0x4000_0000)));
        let len = (bad.len() - 144) as u32;
        bad[140..144].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            read_part10(&bad, 0),
            Err(ReadError::Refused(Refusal::TooLong { .. }))
        ));
    }
}

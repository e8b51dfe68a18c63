//! Reading spooled DICOM Part-10 files for sending.
//!
//! The spool keeps instances as received: preamble, file meta group, then the data set bytes in
//! the original transfer syntax. Sending in that syntax needs only the offset of the data set; a
//! different syntax needs a parse and, for compressed pixel data, a decode (dicom-pixeldata).
//!
//! A labelled instance may be spooled as a coerced header file next to the untouched incoming
//! file; [`spliced`] puts the two together: the header's data set, then the incoming file's bytes
//! from its top-level Pixel Data element on.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::pdata::{DataSet, FileRange};
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};

/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Implicit VR Little Endian.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Deflated Explicit VR Little Endian.
pub use radroute_dataset::DEFLATED_EXPLICIT_VR_LE;

/// Why a spooled file could not be prepared for sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Part10Error {
    /// Not a Part-10 file with a file meta group length.
    #[error("not a DICOM Part-10 file with a file meta group length")]
    NotPart10,
    /// Parsing failed.
    #[error("cannot parse the spooled file: {0}")]
    Parse(String),
    /// Transcoding (decompression) failed.
    #[error("cannot convert to Explicit VR Little Endian: {0}")]
    Transcode(String),
    /// The compressed pixel data is damaged (cut short, or it decodes to the wrong size or to
    /// noise): sending it decompressed would pass it off as a clean image.
    #[error("compressed pixel data ({ts}) is corrupt, not sent decompressed: {detail}")]
    CorruptPixels {
        /// The compressed transfer syntax.
        ts: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A spooled file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A header file's incoming file holds no top-level Pixel Data to splice after it.
    #[error("{0}: no top-level Pixel Data to put after the coerced header")]
    NoPixelData(PathBuf),
}

/// Offset of the data set in a Part-10 file: after the preamble, "DICM" and the meta group.
pub fn dataset_offset(file: &[u8]) -> Result<usize, Part10Error> {
    meta_end(file)
        .filter(|&o| o <= file.len())
        .ok_or(Part10Error::NotPart10)
}

/// Where the file meta group ends, from the first 144 bytes of a Part-10 file.
fn meta_end(file: &[u8]) -> Option<usize> {
    radroute_dataset::part10_dataset_offset(file)
}

/// The data set of a spooled Part-10 file, to send as it is: a range of the file, of which
/// only the first 144 bytes are read here. Blocking I/O.
pub fn dataset_of(path: &Path) -> Result<DataSet, Part10Error> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut first = [0u8; 144];
    file.read_exact(&mut first).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Part10Error::NotPart10,
        _ => io_error(path)(e),
    })?;
    let offset = meta_end(&first)
        .map(|o| o as u64)
        .filter(|&o| o <= len)
        .ok_or(Part10Error::NotPart10)?;
    Ok(DataSet {
        head: Vec::new(),
        head_start: 0,
        tail: Some(FileRange::new(file, offset, len - offset)),
    })
}

/// The data set of an instance spooled as a coerced header (`header`) plus its incoming file:
/// the header's data set in memory, then the incoming file from its top-level Pixel Data on, as
/// a file range, so the pixels are not read here. For a whole Part-10 file (to transcode), set
/// `head_start` to 0 and call [`DataSet::into_bytes`]. Blocking I/O.
pub fn spliced(header: &Path, incoming: &Path, ts_uid: &str) -> Result<DataSet, Part10Error> {
    let head = std::fs::read(header).map_err(io_error(header))?;
    let head_start = dataset_offset(&head)?;
    let at = splice_point(incoming, ts_uid)?
        .ok_or_else(|| Part10Error::NoPixelData(incoming.to_path_buf()))?;
    let file = std::fs::File::open(incoming).map_err(io_error(incoming))?;
    let len = file.metadata().map_err(io_error(incoming))?.len();
    Ok(DataSet {
        head,
        head_start,
        tail: Some(FileRange::new(file, at, len.saturating_sub(at))),
    })
}

/// Re-encodes the data set of a Part-10 file uncompressed, in Explicit VR Little Endian or, when
/// `implicit` is true, Implicit VR Little Endian (for destinations that accept only that),
/// decoding compressed pixel data. CPU-heavy for compressed input: call from a blocking thread.
///
/// Corrupt compressed pixels never come out as clean-looking native ones: a stream cut short
/// is refused before decoding, and what the codec produced is checked frame by frame (every
/// sample present, no grayscale frame that looks like noise) before it is written; either fails
/// with [`Part10Error::CorruptPixels`] (the caller then keeps the original syntax or gives up).
pub fn to_uncompressed(file: &[u8], implicit: bool) -> Result<Vec<u8>, Part10Error> {
    let mut obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(file)
        .map_err(|e| Part10Error::Parse(e.to_string()))?;
    let compressed = matches!(
        obj.element_opt(dicom_dictionary_std::tags::PIXEL_DATA),
        Ok(Some(e)) if matches!(e.value(), dicom_core::value::Value::PixelSequence(_))
    );
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    if compressed {
        damaged(&ts, radroute_decode::check_encapsulated(&obj))?;
    }
    obj.transcode(&EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| Part10Error::Transcode(e.to_string()))?;
    if compressed {
        damaged(&ts, radroute_decode::check_frames(&obj))?;
    }
    let target = if implicit {
        IMPLICIT_VR_LITTLE_ENDIAN.erased()
    } else {
        EXPLICIT_VR_LITTLE_ENDIAN.erased()
    };
    let mut out = Vec::with_capacity(file.len());
    obj.write_dataset_with_ts(&mut out, &target)
        .map_err(|e| Part10Error::Transcode(e.to_string()))?;
    if out.len() % 2 == 1 {
        out.push(0);
    }
    Ok(out)
}

/// Only a verdict that the pixels are damaged refuses a transcode; a frame radroute cannot
/// interpret (a pixel format it does not classify) was still decoded by the codec without error.
fn damaged(ts: &str, check: Result<(), radroute_decode::DecodeError>) -> Result<(), Part10Error> {
    match check {
        Err(radroute_decode::DecodeError::CorruptPixelData { detail, .. }) => {
            Err(Part10Error::CorruptPixels {
                ts: ts.to_string(),
                detail,
            })
        }
        _ => Ok(()),
    }
}

/// Offset of the top-level Pixel Data element's header in a data set: the one element-header
/// walker of `radroute-dataset`, which also checks every declared length on the way.
pub use radroute_dataset::pixel_data_offset;

/// Where the top-level Pixel Data element starts in the Part-10 file `incoming` (a byte offset
/// from the start of the file), if it has one this walk can find ([`pixel_data_offset`]): the
/// point where [`spliced`] joins a coerced header to the incoming pixels. Processing asks before
/// it writes a header file, so the forwarder never meets a header it cannot join. Blocking I/O.
pub fn splice_point(incoming: &Path, ts_uid: &str) -> Result<Option<u64>, Part10Error> {
    let (mut file, _, head) = read_head(incoming)?;
    match splice_offset(&head, ts_uid)? {
        Some(at) => Ok(Some(at as u64)),
        None if head.len() as u64 == HEAD => {
            let mut all = head;
            file.read_to_end(&mut all).map_err(io_error(incoming))?;
            Ok(splice_offset(&all, ts_uid)?.map(|p| p as u64))
        }
        None => Ok(None),
    }
}

/// Bytes read from the start of an incoming file to find its Pixel Data: enough for the file
/// meta and the header of almost any radiograph; longer headers are read whole.
const HEAD: u64 = 256 << 10;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Part10Error {
    let path = path.to_path_buf();
    move |source| Part10Error::Io { path, source }
}

/// Opens `path` and reads up to [`HEAD`] bytes; returns the file (positioned after them), its
/// length and the bytes.
fn read_head(path: &Path) -> Result<(std::fs::File, u64, Vec<u8>), Part10Error> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut head = Vec::with_capacity(HEAD.min(len) as usize);
    (&mut file)
        .take(HEAD)
        .read_to_end(&mut head)
        .map_err(io_error(path))?;
    Ok((file, len, head))
}

/// Offset of the top-level Pixel Data in the Part-10 bytes `file` (from the file's start), or
/// of a prefix of them: the splice point of [`splice_point`], on bytes (fuzzed as such).
pub fn splice_offset(file: &[u8], ts_uid: &str) -> Result<Option<usize>, Part10Error> {
    let offset = dataset_offset(file)?;
    Ok(pixel_data_offset(&file[offset..], ts_uid).map(|p| offset + p))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A Part-10 file with an empty file meta group around `dataset`.
    fn part10(dataset: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend_from_slice(&[0x02, 0, 0, 0, b'U', b'L', 4, 0, 0, 0, 0, 0]);
        f.extend_from_slice(dataset);
        f
    }

    #[test]
    fn spliced_joins_the_header_to_the_incoming_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let old = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        let coerced = [
            old.clone(),
            explicit((0x0018, 0x0015), b"CS", b"HAND", None),
        ]
        .concat();
        let pixels = explicit((0x7FE0, 0x0010), b"OW", &[1, 2, 3, 4], None);
        let (incoming, header) = (dir.path().join("in.dcm"), dir.path().join("hdr.dcm"));
        std::fs::write(&incoming, part10(&[old, pixels.clone()].concat())).unwrap();
        std::fs::write(&header, part10(&coerced)).unwrap();
        let data = spliced(&header, &incoming, EXPLICIT_VR_LE).unwrap();
        assert_eq!(
            data.into_bytes().unwrap(),
            [coerced.clone(), pixels.clone()].concat()
        );
        // With the header's preamble and meta: a whole Part-10 file, for transcoding.
        let mut whole = spliced(&header, &incoming, EXPLICIT_VR_LE).unwrap();
        whole.head_start = 0;
        assert_eq!(
            whole.into_bytes().unwrap(),
            part10(&[coerced, pixels].concat())
        );
        let data = dataset_of(&incoming).unwrap();
        assert_eq!(
            data.len(),
            std::fs::metadata(&incoming).unwrap().len() - 144
        );
    }

    #[test]
    fn finds_pixel_data_in_implicit_vr() {
        let mut data = vec![0x08, 0, 0x18, 0, 4, 0, 0, 0];
        data.extend_from_slice(b"1.2\0");
        let at = data.len();
        data.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, 2, 0, 0, 0, 7, 7]);
        assert_eq!(pixel_data_offset(&data, IMPLICIT_VR_LE), Some(at));
    }
}

//! Reading spooled DICOM Part-10 files for sending.
//!
//! The spool keeps instances as received: preamble, file meta group, then the data set bytes in
//! the original transfer syntax. Sending in that syntax needs only the offset of the data set; a
//! different syntax needs a parse and, for compressed pixel data, a decode (dicom-pixeldata).

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
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";

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
}

/// Offset of the data set in a Part-10 file: after the preamble, "DICM" and the meta group.
pub fn dataset_offset(file: &[u8]) -> Result<usize, Part10Error> {
    if file.len() < 144 || &file[128..132] != b"DICM" {
        return Err(Part10Error::NotPart10);
    }
    // (0002,0000) UL, explicit VR little endian: tag(4) VR(2) len(2) value(4).
    if file[132..136] != [0x02, 0x00, 0x00, 0x00] || &file[136..138] != b"UL" {
        return Err(Part10Error::NotPart10);
    }
    let group_len = u32::from_le_bytes([file[140], file[141], file[142], file[143]]) as usize;
    let offset = 144usize
        .checked_add(group_len)
        .filter(|&o| o <= file.len())
        .ok_or(Part10Error::NotPart10)?;
    Ok(offset)
}

/// Re-encodes the data set of a Part-10 file uncompressed, in Explicit VR Little Endian or, when
/// `implicit` is true, Implicit VR Little Endian (for destinations that accept only that),
/// decoding compressed pixel data. CPU-heavy for compressed input: call from a blocking thread.
pub fn to_uncompressed(file: &[u8], implicit: bool) -> Result<Vec<u8>, Part10Error> {
    let mut obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(file)
        .map_err(|e| Part10Error::Parse(e.to_string()))?;
    obj.transcode(&EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| Part10Error::Transcode(e.to_string()))?;
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

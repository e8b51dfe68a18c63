//! Reading Part-10 files with dicom-object: identity, transfer syntax, and the Pixel Data
//! element as bytes (native) or fragments (encapsulated) for exact comparison.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::open_file;

/// Pixel Data as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    /// Native: the values as bytes (decoded values re-encoded little endian by dicom-object).
    Native(Vec<u8>),
    /// Encapsulated: the fragments (the basic offset table is not compared).
    Fragments(Vec<Vec<u8>>),
}

impl Pixels {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Pixels::Native(b) => format!("native, {} bytes", b.len()),
            Pixels::Fragments(f) => format!(
                "{} fragment(s), {} bytes",
                f.len(),
                f.iter().map(Vec::len).sum::<usize>()
            ),
        }
    }
}

/// What a test compares about one file.
#[derive(Debug, Clone)]
pub struct Summary {
    /// SOP Instance UID from the data set.
    pub sop_instance_uid: String,
    /// Transfer syntax from the file meta.
    pub transfer_syntax: String,
    /// Pixel Data.
    pub pixels: Pixels,
}

fn clean(s: &str) -> String {
    s.trim_end_matches(['\0', ' ']).trim().to_string()
}

/// Reads `path` and summarises it.
pub fn summary(path: &Path) -> Result<Summary, String> {
    let obj = open_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ts = clean(obj.meta().transfer_syntax());
    let uid = obj
        .element(tags::SOP_INSTANCE_UID)
        .map_err(|e| format!("{}: SOP Instance UID: {e}", path.display()))?
        .to_str()
        .map(|s| clean(&s))
        .map_err(|e| format!("{}: SOP Instance UID: {e}", path.display()))?;
    let value = obj
        .element(tags::PIXEL_DATA)
        .map_err(|e| format!("{}: Pixel Data: {e}", path.display()))?
        .value();
    let pixels = match value.fragments() {
        Some(fragments) => Pixels::Fragments(fragments.to_vec()),
        None => Pixels::Native(
            value
                .to_bytes()
                .map_err(|e| format!("{}: Pixel Data bytes: {e}", path.display()))?
                .into_owned(),
        ),
    };
    Ok(Summary {
        sop_instance_uid: uid,
        transfer_syntax: ts,
        pixels,
    })
}

/// SOP Instance UID of a Part-10 file.
pub fn sop_instance_uid(path: &Path) -> String {
    let obj = open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    clean(obj.meta().media_storage_sop_instance_uid())
}

/// The raw bytes from the last Pixel Data tag (7FE0,0010 little endian) to the end of the file:
/// a byte-exact comparison for files dicom-object cannot read (e.g. an over-long UID in the
/// file meta that a destination wrote from the data set).
pub fn pixel_tail(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let pos = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])?;
    Some(bytes[pos..].to_vec())
}

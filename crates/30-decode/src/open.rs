//! Opening a DICOM file with a typed error.

use std::path::Path;

use dicom_object::{open_file, DefaultDicomObject};

use crate::DecodeError;

/// Reads a DICOM Part 10 file (preamble, file meta, dataset) into memory.
///
/// Files without a preamble or file meta, with a bad VR or cut inside the header fail here with
/// [`DecodeError::Open`]; they never reach the pixel decoders.
///
/// A file cut right after the last fragment of encapsulated Pixel Data still parses with
/// dicom-object; it is refused here because its Sequence Delimitation Item is missing.
pub fn open_dicom(path: &Path) -> Result<DefaultDicomObject, DecodeError> {
    let err = |detail: String| DecodeError::Open {
        path: path.to_path_buf(),
        detail,
    };
    let obj = open_file(path).map_err(|e| err(e.to_string()))?;
    if !encapsulation_terminated(path, &obj) {
        return Err(err(
            "encapsulated Pixel Data has no Sequence Delimitation Item (file truncated)".into(),
        ));
    }
    Ok(obj)
}

/// False only when Pixel Data is encapsulated, is the last element, and the file does not end
/// with the Sequence Delimitation Item `(FFFE,E0DD)` of length 0.
fn encapsulation_terminated(path: &Path, obj: &DefaultDicomObject) -> bool {
    use dicom_core::value::Value;
    use std::io::{Read, Seek, SeekFrom};
    const DELIMITER: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
    let pixel = dicom_dictionary_std::tags::PIXEL_DATA;
    let Ok(elem) = obj.element(pixel) else {
        return true;
    };
    if !matches!(elem.value(), Value::PixelSequence(_))
        || radroute_dataset::is_deflated(obj.meta().transfer_syntax())
        || obj.iter().any(|e| e.header().tag > pixel)
    {
        return true;
    }
    let mut tail = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::End(-8))?;
        f.read_exact(&mut tail)
    });
    read.is_err() || tail == DELIMITER
}

/// True when the file starts like DICOM Part 10 (`DICM` at offset 128), to tell DICOM from
/// PNG/JPEG by content rather than by extension.
pub fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head[128..132] == b"DICM")
        .unwrap_or(false)
}

/// True when `path` is to be read as DICOM: a `.dcm`/`.dicom` extension, or DICOM content
/// ([`looks_like_dicom`]); everything else is read as PNG/JPEG.
fn is_dicom(path: &Path) -> bool {
    let dicom_ext = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("dcm") || e.eq_ignore_ascii_case("dicom"))
        .unwrap_or(false);
    dicom_ext || looks_like_dicom(path)
}

/// Step 0 for any supported file: DICOM (by content or a `.dcm`/`.dicom` extension, frame 0)
/// or PNG/JPEG.
///
/// The CLI's entry point; the daemon, which already holds the parsed object, calls
/// [`crate::decode_display`] instead.
pub fn load_display(path: &Path) -> Result<crate::GrayImage, DecodeError> {
    if is_dicom(path) {
        crate::decode_display(&open_dicom(path)?)
    } else {
        crate::load_image_file(path)
    }
}

/// The model input of any supported file, exactly as the daemon computes it: DICOM through
/// [`crate::model_input`] (reduced-resolution JPEG 2000 included), PNG/JPEG through step 0 and
/// [`crate::preprocess`]. `radroute classify` and `radroute eval` use it, so the command line
/// labels a file as the daemon does.
pub fn load_model_input(path: &Path) -> Result<Vec<f32>, DecodeError> {
    if is_dicom(path) {
        crate::model_input(&open_dicom(path)?)
    } else {
        Ok(crate::preprocess(&crate::load_image_file(path)?))
    }
}

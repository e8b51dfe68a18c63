//! Checks that pixel data is what it claims to be, for callers that pass pixels on rather than
//! display them: the forwarder must never turn corrupt compressed pixel data into clean-looking
//! uncompressed pixels (a codec that "succeeds" on a damaged stream often yields noise or a
//! partly blank frame, which a destination would store and a radiologist would read).

use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::frame::{check_end_marker, decode_samples, read_module, MARKER_CODECS};
use crate::DecodeError;

/// Checks the encapsulated (compressed) Pixel Data of `obj` before it is decoded: for JPEG,
/// JPEG-LS and JPEG 2000 syntaxes the last fragment must end with the end-of-image/codestream
/// marker, else the stream was cut short. Objects without encapsulated pixel data pass.
pub fn check_encapsulated(obj: &FileDicomObject<InMemDicomObject>) -> Result<(), DecodeError> {
    let m = read_module(obj)?;
    if m.ts.starts_with(MARKER_CODECS) {
        check_end_marker(obj, &m)?;
    }
    Ok(())
}

/// Checks every frame of `obj`'s pixel data as stored: the element holds all the samples the
/// header declares (rows × columns × samples × frames) and no grayscale frame looks like noise
/// (the check [`crate::decode_frame`] applies before classifying). Meant for native pixel data
/// that a codec just produced; on compressed data it decodes every frame.
pub fn check_frames(obj: &FileDicomObject<InMemDicomObject>) -> Result<(), DecodeError> {
    let frames = read_module(obj)?.frames;
    for frame in 0..frames {
        decode_samples(obj, frame)?.into_raw()?;
    }
    Ok(())
}

//! Pixel data to a display-ready grayscale image, and the model's preprocessing.
//!
//! radroute classifies what a radiologist would see, so decoding ends in a display image
//! (docs/preprocessing.md step 0) and the model input is made from that by one documented
//! function (steps 1–4) that the training code implements identically.
//!
//! - [`open_dicom`], [`decode_display`] (frame 0 of DICOM), [`load_image_file`] (PNG/JPEG):
//!   step 0 to a [`GrayImage`] in [0, 1], bright = dense.
//! - [`decode_frame`]: the stored samples of one frame, for checks and benchmarks.
//! - [`preprocess()`]: steps 1–4 to a `3×224×224` tensor; [`preprocess_gray`]: steps 1–3.
//! - [`check_encapsulated`], [`check_frames`]: whether pixel data is whole and plausible, for
//!   the forwarder, which must not send corrupt compressed pixels on as clean native ones.
//!
//! Codecs: dicom-pixeldata (native, deflate, RLE, JPEG baseline/lossless, JPEG-LS through CharLS,
//! JPEG 2000 and HTJ2K through OpenJPEG) and libjpeg-turbo 3 for 12-bit lossy JPEG. See
//! docs/decode.md for the table. Synchronous; no I/O beyond the file functions named above.
#![deny(missing_docs)]

mod attrs;
mod display;
mod error;
mod file_image;
mod frame;
mod gray;
mod j2k_reduced;
mod jpeg12;
mod lut;
mod open;
pub mod preprocess;
mod table;
mod verify;

pub use display::{decode_display, decode_display_with_source, to_display, VoiSource};
pub use error::DecodeError;
pub use file_image::load_image_file;
pub use frame::{decode_frame, RawFrame};
pub use gray::GrayImage;
pub use open::{load_display, load_model_input, looks_like_dicom, open_dicom};
pub use preprocess::{preprocess, preprocess_gray, PREPROCESSING_VERSION};
pub use verify::{check_encapsulated, check_frames};

/// Shorter side a reduced-resolution JPEG 2000 decode keeps for the model input: 4 × 224. The
/// resize of step 1 still shrinks it at least fourfold, so the finest wavelet level it skips
/// would have been averaged away. On the shared samples one level dropped moves the model input
/// by a mean of 0.000–0.008 (normalised units, range ~4.5) and costs a quarter of the full
/// decode; two levels (keeping 2 × 224) moved it up to 0.018 for little more speed, more than a
/// model trained on full decodes should be asked to absorb.
pub const REDUCED_DECODE_MIN_SIDE: u32 = 4 * preprocess::SIZE;

/// Frame 0 of a DICOM object to the model input `[3, 224, 224]` (steps 0–4): what the daemon
/// hands to the classifier.
///
/// The same tensor as `preprocess(&decode_display(obj)?)`, computed without the full-size
/// display image for grayscale integer samples: their display rows go band by band from the
/// lookup table of step 0 into the resize of step 1. One exception: a grayscale JPEG 2000 frame
/// whose shorter side is at least 8 × 224 is decoded at a reduced resolution that keeps at least
/// [`REDUCED_DECODE_MIN_SIDE`] ([`frame::decode_samples_for_size`]): its wavelet low-pass instead
/// of the full image goes into the same resize, a tensor that differs by a small fraction of the
/// value range and costs a fraction of the decode.
pub fn model_input(
    obj: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>,
) -> Result<Vec<f32>, DecodeError> {
    let decoded = frame::decode_samples_for_size(obj, 0, REDUCED_DECODE_MIN_SIDE)?;
    let resized = match table::DisplayTable::build(obj, &decoded) {
        Some(table) => table?.0.resized(preprocess::SIZE)?,
        None => {
            let (img, _) = to_display(obj, decoded.into_raw()?)?;
            return Ok(preprocess(&img));
        }
    };
    Ok(preprocess::normalise(&preprocess::finish_gray(resized)))
}

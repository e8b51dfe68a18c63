//! The one error type of this crate.

use std::path::PathBuf;

/// Why an object or file could not be turned into a display image.
///
/// The variants let the daemon tell apart "we cannot decode this syntax" (count it, forward
/// unlabelled), "the pixels are broken" and "the header lacks what an image needs". Every variant
/// names the SOP Instance UID (or the path) so a log line is enough to find the instance.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read or parsed as a DICOM file (no preamble, bad meta, bad VR, ...).
    #[error("cannot open DICOM file {path}: {detail}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// A PNG or JPEG file could not be read or decoded.
    #[error("cannot read image file {path}: {detail}")]
    ImageFile {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        detail: String,
    },
    /// An attribute that an image needs is absent (Rows, Columns, Pixel Data, ...).
    #[error("instance {uid}: missing attribute {name}")]
    MissingAttribute {
        /// SOP Instance UID (or "?" when the object has none).
        uid: String,
        /// Keyword of the missing attribute.
        name: &'static str,
    },
    /// An attribute is present but has a value this crate cannot use.
    #[error("instance {uid}: invalid {name} value {value:?}")]
    InvalidAttribute {
        /// SOP Instance UID.
        uid: String,
        /// Keyword of the attribute.
        name: &'static str,
        /// The offending value, as text.
        value: String,
    },
    /// The transfer syntax is unknown or has no decoder in this build.
    #[error("instance {uid}: unsupported transfer syntax {ts}")]
    UnsupportedTransferSyntax {
        /// SOP Instance UID.
        uid: String,
        /// Transfer syntax UID.
        ts: String,
    },
    /// The pixel format is valid DICOM but outside what radroute classifies (e.g. PALETTE COLOR,
    /// 1-bit, float pixel data).
    #[error("instance {uid}: unsupported pixel format: {detail}")]
    UnsupportedPixelFormat {
        /// SOP Instance UID.
        uid: String,
        /// What is unsupported.
        detail: String,
    },
    /// The pixel data is truncated or the codec rejected the stream.
    #[error("instance {uid}: corrupt pixel data ({ts}): {detail}")]
    CorruptPixelData {
        /// SOP Instance UID.
        uid: String,
        /// Transfer syntax UID.
        ts: String,
        /// The codec's message.
        detail: String,
    },
}

impl DecodeError {
    /// A short stable name of the variant, for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Open { .. } => "open",
            DecodeError::ImageFile { .. } => "image_file",
            DecodeError::MissingAttribute { .. } => "missing_attribute",
            DecodeError::InvalidAttribute { .. } => "invalid_attribute",
            DecodeError::UnsupportedTransferSyntax { .. } => "unsupported_transfer_syntax",
            DecodeError::UnsupportedPixelFormat { .. } => "unsupported_pixel_format",
            DecodeError::CorruptPixelData { .. } => "corrupt_pixel_data",
        }
    }
}

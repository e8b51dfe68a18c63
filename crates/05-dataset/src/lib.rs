//! Bounded walks over encoded DICOM data sets, before anything parses them.
//!
//! dicom-parser 0.10 trusts declared lengths: it allocates and zero-fills a value's declared
//! length before reading it, so one garbled header in a 38 KB data set cost 1.3 GB of memory.
//! Every place in radroute that looks at encoded bytes (the store step before its parse, the
//! forwarder looking for the splice point, the fuzz targets) goes through the one element-header
//! walker of this crate:
//!
//! - [`walk`]: the walker. It follows dicom-parser 0.10's `DataSetReader` token for token,
//!   reading headers only, so what it accepts the parser reads within the bytes present.
//! - [`check`]: the structural check of a received data set (declared lengths, encapsulated
//!   Pixel Data delimiters, nesting depth).
//! - [`inflate`]: Deflated data sets inflated with a bound, so an inflate bomb stops at the cap.
//! - [`pixels`]: where top-level Pixel Data starts (the forwarder's splice point) and native
//!   Pixel Data at the end (the store step's zero-copy hand-off).
//! - [`received`]: the store step's read of a received data set (check, inflate, parse), and the
//!   same for a Part-10 file.
//! - [`syntax`]: transfer-syntax facts used across the workspace (the Deflated UIDs).
//! - [`attr`]: attribute values as text without DICOM padding (the one trimmed-string reader).
#![deny(missing_docs)]

pub mod attr;
pub mod check;
pub mod inflate;
pub mod pixels;
pub mod received;
pub mod syntax;
pub mod walk;

pub use check::{check, Refusal, MAX_NESTING};
pub use inflate::inflate_bounded;
pub use pixels::{native_pixels_at_end, pixel_data_offset, NativePixels};
pub use received::{part10_dataset_offset, read_part10, read_received, ReadError, Received};
pub use syntax::{is_deflated, DEFLATED_EXPLICIT_VR_LE, DEFLATED_SYNTAXES};

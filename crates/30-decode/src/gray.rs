//! The grayscale image handed from step 0 to the preprocessing steps.

/// A single-channel `f32` image, row-major, values in [0, 1], bright = dense.
///
/// It is the boundary between decoding (DICOM, PNG, JPEG) and the model preprocessing, so both
/// input kinds meet in one type.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    /// Width in pixels (columns).
    pub width: u32,
    /// Height in pixels (rows).
    pub height: u32,
    /// `width * height` samples, row after row.
    pub data: Vec<f32>,
}

impl GrayImage {
    /// Wraps samples; `None` when `data.len() != width * height` or a side is zero.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Option<Self> {
        let n = (width as usize).checked_mul(height as usize)?;
        (n > 0 && data.len() == n).then_some(GrayImage {
            width,
            height,
            data,
        })
    }
}

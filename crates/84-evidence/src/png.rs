//! The model input as a picture: what the classifier saw, not the original image.

use std::io::Cursor;

/// Encodes channel 0 of a `[3, size, size]` model input tensor as an 8-bit grayscale PNG,
/// undoing the normalisation (`value * std + mean`) so it looks as the preprocessing made it.
/// `None` when the tensor does not have `3 * size * size` values or encoding fails.
pub fn model_input_png(tensor: &[f32], size: u32, mean: f32, std: f32) -> Option<Vec<u8>> {
    let n = (size as usize).checked_mul(size as usize)?;
    if size == 0 || tensor.len() != 3 * n {
        return None;
    }
    let pixels: Vec<u8> = tensor[..n]
        .iter()
        .map(|v| ((v * std + mean).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let img = image::GrayImage::from_raw(size, size, pixels)?;
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_denormalised_channel() {
        let size = 4u32;
        let n = (size * size) as usize;
        // A gradient in [0, 1], normalised like the preprocessing does.
        let (mean, std) = (0.485f32, 0.229f32);
        let gray: Vec<f32> = (0..n).map(|i| i as f32 / (n - 1) as f32).collect();
        let mut tensor: Vec<f32> = gray.iter().map(|v| (v - mean) / std).collect();
        tensor.extend(std::iter::repeat_n(0.0, 2 * n));
        let png = model_input_png(&tensor, size, mean, std).expect("png");
        let back = image::load_from_memory(&png).expect("decode").to_luma8();
        assert_eq!(back.dimensions(), (size, size));
        assert_eq!(back.as_raw()[0], 0);
        assert_eq!(back.as_raw()[n - 1], 255);
        assert!(back.as_raw().windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn wrong_length_is_refused() {
        assert!(model_input_png(&[0.0; 10], 4, 0.5, 0.5).is_none());
        assert!(model_input_png(&[], 0, 0.5, 0.5).is_none());
    }
}

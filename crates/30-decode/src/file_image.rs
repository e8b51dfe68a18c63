//! Step 0 for PNG and JPEG files (the CLI's input besides DICOM), matching the training code's
//! `load_step0`: 8-bit / 255, 16-bit / 65535, colour to luminance, alpha ignored.

use std::path::Path;

use image::DynamicImage;

use crate::{jpeg12, DecodeError, GrayImage};

/// Reads a PNG or JPEG file into the step-0 image.
///
/// JPEG goes through libjpeg-turbo (as Pillow does, so training and inference see the same
/// samples); PNG through the `image` crate.
pub fn load_image_file(path: &Path) -> Result<GrayImage, DecodeError> {
    let err = |detail: String| DecodeError::ImageFile {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let img = jpeg12::decode8(&bytes).map_err(err)?;
        let data = if img.components == 1 {
            img.samples
                .iter()
                .map(|&v| (f64::from(v) / 255.0) as f32)
                .collect()
        } else {
            img.samples
                .chunks_exact(3)
                .map(|p| luminance(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]), 255.0))
                .collect()
        };
        return GrayImage::new(img.width, img.height, data)
            .ok_or_else(|| err("empty image".into()));
    }
    let dynimg = image::load_from_memory(&bytes).map_err(|e| err(e.to_string()))?;
    from_dynamic(dynimg).ok_or_else(|| err("empty image".into()))
}

fn luminance(r: f64, g: f64, b: f64, max: f64) -> f32 {
    ((0.299 * r + 0.587 * g + 0.114 * b) / max) as f32
}

fn from_dynamic(img: DynamicImage) -> Option<GrayImage> {
    let (w, h) = (img.width(), img.height());
    let data: Vec<f32> = match img {
        DynamicImage::ImageLuma8(b) => b
            .as_raw()
            .iter()
            .map(|&v| (f64::from(v) / 255.0) as f32)
            .collect(),
        DynamicImage::ImageLumaA8(b) => b
            .as_raw()
            .chunks_exact(2)
            .map(|p| (f64::from(p[0]) / 255.0) as f32)
            .collect(),
        DynamicImage::ImageLuma16(b) => b
            .as_raw()
            .iter()
            .map(|&v| (f64::from(v) / 65535.0) as f32)
            .collect(),
        DynamicImage::ImageLumaA16(b) => b
            .as_raw()
            .chunks_exact(2)
            .map(|p| (f64::from(p[0]) / 65535.0) as f32)
            .collect(),
        DynamicImage::ImageRgb8(b) => b
            .as_raw()
            .chunks_exact(3)
            .map(|p| luminance(p[0].into(), p[1].into(), p[2].into(), 255.0))
            .collect(),
        DynamicImage::ImageRgba8(b) => b
            .as_raw()
            .chunks_exact(4)
            .map(|p| luminance(p[0].into(), p[1].into(), p[2].into(), 255.0))
            .collect(),
        other => other
            .to_rgb32f()
            .as_raw()
            .chunks_exact(3)
            .map(|p| luminance(p[0].into(), p[1].into(), p[2].into(), 1.0))
            .collect(),
    };
    GrayImage::new(w, h, data)
}

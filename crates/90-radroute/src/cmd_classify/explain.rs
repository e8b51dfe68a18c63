//! `radroute classify --explain`: what a label rests on, as pictures a PACS admin can look at.
//!
//! For each file two PNGs are written into `--explain-dir`:
//! - `<stem>.input.png`: the exact model input, the 224×224 square of docs/preprocessing.md
//!   steps 1–3 (resized, contrast-stretched, padded) as 16-bit grayscale; step 4 (three
//!   channels, ImageNet normalisation) is a fixed per-pixel formula on it.
//! - `<stem>.occlusion.png`: an occlusion-sensitivity map (Zeiler & Fergus, 2014) over that
//!   input. The model is run again on copies of the input in which one square patch of
//!   [`PATCH`] pixels is set to 0 before step 4 (black, the value of the padding), the patch
//!   moving by [`STRIDE`] pixels (13 × 13 = 169 copies on 224 px, run in batches). Each pixel
//!   gets the mean drop (unmasked minus masked score) of the explained class over the patches
//!   that cover it. The model card's grid of maps (models/train/occlusion_grid.py) uses the
//!   same rule. Red: the score fell when the region was hidden (the label rests on it);
//!   blue: it rose (the region speaks against the label); the strongest drop is full colour.
//!
//! The explained class is the label, or the top class when the model abstains.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use image::{ImageBuffer, Luma, Rgb, RgbImage};
use radroute_classify::{ClassifyError, Model};
use radroute_decode::preprocess::{normalise, preprocess_gray};
use radroute_decode::{load_display, DecodeError, GrayImage};

use super::ClassifyArgs;

/// Side of the square occluding patch, in model-input pixels.
pub const PATCH: u32 = 32;
/// Step between patch positions, in model-input pixels.
pub const STRIDE: u32 = 16;

/// Score drops of one class per input pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct OcclusionMap {
    /// Side of the (square) input and of the map.
    pub size: u32,
    /// Index of the explained class in the model's class order.
    pub class: usize,
    /// The class's score on the unmasked input.
    pub base: f32,
    /// Row-major `size * size` mean score drops (`base - masked`); positive: evidence for.
    pub drops: Vec<f32>,
}

/// Patch offsets along one side: every [`STRIDE`], plus a last one flush with the edge.
fn offsets(size: u32) -> Vec<u32> {
    if size <= PATCH {
        return vec![0];
    }
    let mut v: Vec<u32> = (0..=size - PATCH).step_by(STRIDE as usize).collect();
    if v.last() != Some(&(size - PATCH)) {
        v.push(size - PATCH);
    }
    v
}

/// Runs `score` (a batch of model inputs → per-class scores) on the step-3 `square` and its
/// masked copies (each normalised by step 4), `batch` at a time, and returns the per-pixel mean
/// score drop of `class`.
pub fn occlusion_map<E>(
    square: &GrayImage,
    class: usize,
    batch: usize,
    mut score: impl FnMut(&[&[f32]]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<OcclusionMap, E> {
    let size = square.width.min(square.height);
    let plane = (size * size) as usize;
    let class_score = |scores: &[Vec<f32>], i: usize| {
        scores
            .get(i)
            .and_then(|s| s.get(class))
            .copied()
            .unwrap_or(0.0)
    };
    let base = class_score(&score(&[normalise(square).as_slice()])?, 0);
    let patches: Vec<(u32, u32)> = offsets(size)
        .iter()
        .flat_map(|&y| offsets(size).into_iter().map(move |x| (y, x)))
        .collect();
    let (mut sum, mut count) = (vec![0f32; plane], vec![0u32; plane]);
    for chunk in patches.chunks(batch.max(1)) {
        let masked: Vec<Vec<f32>> = chunk
            .iter()
            .map(|&(y, x)| {
                let mut m = square.clone();
                for row in y..(y + PATCH).min(size) {
                    let start = (row * square.width + x) as usize;
                    let end = (row * square.width + (x + PATCH).min(size)) as usize;
                    if let Some(px) = m.data.get_mut(start..end) {
                        px.fill(0.0);
                    }
                }
                normalise(&m)
            })
            .collect();
        let refs: Vec<&[f32]> = masked.iter().map(Vec::as_slice).collect();
        let scores = score(&refs)?;
        for (i, &(y, x)) in chunk.iter().enumerate() {
            let drop = base - class_score(&scores, i);
            for row in y..(y + PATCH).min(size) {
                for col in x..(x + PATCH).min(size) {
                    let p = (row * size + col) as usize;
                    sum[p] += drop;
                    count[p] += 1;
                }
            }
        }
    }
    let drops = sum
        .iter()
        .zip(&count)
        .map(|(s, &n)| if n == 0 { 0.0 } else { s / n as f32 })
        .collect();
    Ok(OcclusionMap {
        size,
        class,
        base,
        drops,
    })
}

/// The model input square as 16-bit grayscale.
fn input_image(square: &GrayImage) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    let px = square
        .data
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    ImageBuffer::from_raw(square.width, square.height, px).unwrap_or_default()
}

/// The map over the input: gray input, red where hiding a region lowered the score, blue
/// where it raised it, opacity proportional to the drop (the largest |drop| is 70 %).
pub fn overlay(square: &GrayImage, map: &OcclusionMap) -> RgbImage {
    let peak = map
        .drops
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()))
        .max(f32::EPSILON);
    let mut out = RgbImage::new(square.width, square.height);
    for (i, px) in out.pixels_mut().enumerate() {
        let g = square.data.get(i).copied().unwrap_or(0.0).clamp(0.0, 1.0) * 255.0;
        let d = map.drops.get(i).copied().unwrap_or(0.0) / peak;
        let a = 0.7 * d.abs();
        let tint = if d >= 0.0 {
            [255.0, 0.0, 0.0]
        } else {
            [0.0, 64.0, 255.0]
        };
        let mix = |t: f32| (g * (1.0 - a) + t * a).round() as u8;
        *px = Rgb([mix(tint[0]), mix(tint[1]), mix(tint[2])]);
    }
    out
}

/// Why one file could not be explained (reported in its row; the others go on).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The file could not be read or decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Inference failed.
    #[error(transparent)]
    Model(#[from] ClassifyError),
    /// A picture could not be written.
    #[error("cannot write {path}: {detail}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// What `--explain` wrote for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// The explained class's name.
    pub class: String,
    /// Its score on the unmasked input.
    pub score: f32,
    /// Whether the model labels the file with that class (else it abstains).
    pub labelled: bool,
    /// `<stem>.input.png`.
    pub input_png: PathBuf,
    /// `<stem>.occlusion.png`.
    pub occlusion_png: PathBuf,
}

/// Decodes `file`, explains the model's answer and writes the two PNGs into `out_dir`.
pub fn explain_file(
    model: &mut Model,
    file: &Path,
    out_dir: &Path,
    batch: usize,
) -> Result<Explained, ExplainError> {
    let img = load_display(file)?;
    let square = preprocess_gray(&img);
    let base = model
        .classify_batch(&[normalise(&square).as_slice()])?
        .pop()
        .ok_or_else(|| ClassifyError::Inference {
            model: model.info().name,
            detail: "no prediction for the input".into(),
        })?;
    let class_name = base
        .label
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| base.top.0.clone());
    let class = base
        .scores
        .iter()
        .position(|(c, _)| *c == class_name)
        .unwrap_or(0);
    let map = occlusion_map(&square, class, batch, |inputs| {
        model.classify_batch(inputs).map(|preds| {
            preds
                .into_iter()
                .map(|p| p.scores.into_iter().map(|(_, s)| s).collect())
                .collect()
        })
    })?;
    std::fs::create_dir_all(out_dir).map_err(|e| ExplainError::Write {
        path: out_dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let input_png = out_dir.join(format!("{stem}.input.png"));
    let occlusion_png = out_dir.join(format!("{stem}.occlusion.png"));
    let save_err = |p: &Path, e: image::ImageError| ExplainError::Write {
        path: p.to_path_buf(),
        detail: e.to_string(),
    };
    input_image(&square)
        .save(&input_png)
        .map_err(|e| save_err(&input_png, e))?;
    overlay(&square, &map)
        .save(&occlusion_png)
        .map_err(|e| save_err(&occlusion_png, e))?;
    Ok(Explained {
        class: class_name,
        score: map.base,
        labelled: base.label.is_some(),
        input_png,
        occlusion_png,
    })
}

/// `radroute classify --explain`: one row (or JSON object) per file naming the explained class,
/// its score and the two pictures. Exit code 0 when every file was explained, 2 otherwise.
pub fn run(args: &ClassifyArgs, files: &[PathBuf], model: &mut Model) -> ExitCode {
    let js = |v: &str| serde_json::Value::from(v).to_string();
    let mut failed = 0usize;
    for file in files {
        match explain_file(model, file, &args.explain_dir, args.model.batch) {
            Ok(e) if args.json => println!(
                "{{\"path\":{},\"class\":{},\"score\":{},\"labelled\":{},\"input_png\":{},\"occlusion_png\":{}}}",
                js(&file.display().to_string()),
                js(&e.class),
                serde_json::json!(e.score),
                e.labelled,
                js(&e.input_png.display().to_string()),
                js(&e.occlusion_png.display().to_string())
            ),
            Ok(e) => println!(
                "{} {} {:.3}: {} {}",
                file.display(),
                if e.labelled { &e.class } else { "abstain, top" },
                e.score,
                e.input_png.display(),
                e.occlusion_png.display()
            ),
            Err(err) => {
                failed += 1;
                if args.json {
                    println!(
                        "{{\"path\":{},\"error\":{}}}",
                        js(&file.display().to_string()),
                        js(&err.to_string())
                    );
                } else {
                    println!("{} ERROR {err}", file.display());
                }
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radroute_classify::{find_library, Device, RuntimeOptions};
    use radroute_decode::preprocess::SIZE;

    /// The tiny fixture model: sigmoids of channel 0's quadrant means (make_tiny.py).
    fn tiny() -> Model {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let lib = find_library(None).expect("ONNX Runtime (set ORT_DYLIB_PATH or .venv)");
        Model::load(
            &root.join("tests/fixtures/models/tiny"),
            &RuntimeOptions {
                library_path: Some(lib),
                device: Device::Cpu,
                intra_threads: 1,
            },
        )
        .expect("tiny model loads")
    }

    /// Black (the masking value) with one bright block in the top-right quadrant, rows 20..60,
    /// columns 150..200: the only region whose masking changes anything.
    fn block_square() -> GrayImage {
        let mut data = vec![0.0; (SIZE * SIZE) as usize];
        for row in 20..60 {
            for col in 150..200 {
                data[(row * SIZE + col) as usize] = 1.0;
            }
        }
        GrayImage::new(SIZE, SIZE, data).expect("consistent image")
    }

    #[test]
    fn patches_cover_the_input() {
        assert_eq!(offsets(224).len(), 13);
        assert_eq!(offsets(224).last(), Some(&192));
        assert_eq!(offsets(100), vec![0, 16, 32, 48, 64, 68]);
        assert_eq!(offsets(20), vec![0]);
    }

    #[test]
    fn masking_the_informative_region_changes_the_score_and_nothing_else_does() {
        let mut model = tiny();
        let square = block_square();
        let hand = 2; // shoulder, elbow, hand, pelvis, knee; top-right weight of hand is +0.5
        let map = occlusion_map(&square, hand, 8, |inputs| {
            model.classify_batch(inputs).map(|preds| {
                preds
                    .into_iter()
                    .map(|p| p.scores.into_iter().map(|(_, s)| s).collect::<Vec<f32>>())
                    .collect::<Vec<_>>()
            })
        })
        .expect("model runs");
        assert_eq!(map.size, SIZE);
        assert_eq!(
            map.drops.len(),
            (SIZE * SIZE) as usize,
            "one value per input pixel"
        );
        let at = |row: u32, col: u32| map.drops[(row * SIZE + col) as usize];
        assert!(
            at(40, 175) > 1e-4,
            "hiding the block lowers hand: {}",
            at(40, 175)
        );
        for (row, col) in [(200, 20), (180, 100), (112, 10), (220, 220)] {
            assert_eq!(at(row, col), 0.0, "({row},{col}) is far from the block");
        }
        let rgb = overlay(&square, &map);
        assert_eq!(rgb.dimensions(), (SIZE, SIZE));
        let red = rgb.get_pixel(175, 40);
        let far = rgb.get_pixel(20, 200);
        assert!(red[0] > red[2] + 50, "block tinted red: {red:?}");
        assert_eq!(far[0], far[2], "untouched region stays gray: {far:?}");
    }

    #[test]
    fn explain_file_writes_both_pictures_of_the_input_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let png = dir.path().join("block.png");
        let square = block_square();
        input_image(&square).save(&png).expect("write test image");
        let mut model = tiny();
        let out = explain_file(&mut model, &png, &dir.path().join("out"), 8).expect("explains");
        assert_eq!(out.input_png, dir.path().join("out/block.input.png"));
        for p in [&out.input_png, &out.occlusion_png] {
            let img = image::open(p).expect("readable PNG");
            assert_eq!((img.width(), img.height()), (SIZE, SIZE), "{}", p.display());
        }
        assert!(out.score.is_finite());
    }
}

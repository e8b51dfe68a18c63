//! Per-stage timings of decoding (not a test): open, step 0 (`decode_display`: decode, Modality
//! LUT, VOI, MONOCHROME1), preprocessing (steps 1–4) and the whole `model_input`, median of
//! several runs, plus the peak heap allocated by `model_input` beyond what the object holds.
//!
//! `cargo bench -p radroute-decode` prints a Markdown table: first synthetic in-memory objects
//! (the daemon's main case, a 2000×2500 12-bit native CR with a window; no files needed), then
//! every good shared sample in ../shared/data/dicom-samples when present. `BENCH_RUNS` sets the
//! number of runs (default 7); `BENCH_FILTER` keeps the rows whose name contains it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};
use radroute_decode::{decode_display, model_input, open_dicom, preprocess};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// A 2000×2500 12-bit CR in memory, Explicit VR Little Endian, OW pixel data, with a window
/// (or, with `window == false`, MONOCHROME1 and min–max VOI): smooth anatomy-like content plus
/// noise, so the noise check passes as for a real radiograph.
fn synthetic_cr(window: bool) -> FileDicomObject<InMemDicomObject> {
    let (rows, cols) = (2500u16, 2000u16);
    let mut seed = 12345u64;
    let mut pixels = Vec::with_capacity(rows as usize * cols as usize);
    for y in 0..rows as i64 {
        for x in 0..cols as i64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((seed >> 33) % 41) as i64 - 20;
            let (dx, dy) = (x - 1000, y - 1250);
            let body = 3000 - (dx * dx + dy * dy) / 1200 + (x / 37 % 5) * 40;
            pixels.push((body + noise).clamp(0, 4095) as u16);
        }
    }
    let ds = |tag, v: &str| DataElement::new(tag, VR::DS, PrimitiveValue::from(v));
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let mut o = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.1"),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4"),
        ),
        us(tags::SAMPLES_PER_PIXEL, 1),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(if window { "MONOCHROME2" } else { "MONOCHROME1" }),
        ),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 12),
        us(tags::HIGH_BIT, 11),
        us(tags::PIXEL_REPRESENTATION, 0),
        ds(tags::RESCALE_SLOPE, "1"),
        ds(tags::RESCALE_INTERCEPT, "0"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ]);
    if window {
        o.put(ds(tags::WINDOW_CENTER, "2048"));
        o.put(ds(tags::WINDOW_WIDTH, "3500"));
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax("1.2.840.10008.1.2.1")
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.1")
        .media_storage_sop_instance_uid("1.2.3.4")
        .build()
        .expect("meta");
    o.with_exact_meta(meta)
}

/// One table row: medians of open (file samples only), step 0, preprocess and model_input, and
/// the peak extra heap of one model_input call.
fn row(
    name: &str,
    ts: &str,
    runs: usize,
    mut get: impl FnMut() -> Option<(FileDicomObject<InMemDicomObject>, f64)>,
) {
    let (mut open, mut disp, mut pre, mut full) = (vec![], vec![], vec![], vec![]);
    let mut size = String::new();
    let mut peak_mb = 0.0;
    for _ in 0..runs {
        let Some((obj, open_ms)) = get() else { return };
        open.push(open_ms);
        let t = Instant::now();
        let Ok(img) = decode_display(&obj) else {
            return;
        };
        disp.push(ms(t));
        size = format!("{}x{}", img.width, img.height);
        let t = Instant::now();
        let tensor = preprocess(&img);
        pre.push(ms(t));
        std::hint::black_box(tensor);
        drop(img);
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let Ok(tensor) = model_input(&obj) else {
            return;
        };
        full.push(ms(t));
        peak_mb = (PEAK.load(Ordering::Relaxed) - base) as f64 / 1e6;
        std::hint::black_box(tensor);
    }
    println!(
        "| {name} | {ts} | {size} | {:.1} | {:.1} | {:.1} | {:.1} | {peak_mb:.1} |",
        median(open),
        median(disp),
        median(pre),
        median(full),
    );
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let filter = std::env::var("BENCH_FILTER").unwrap_or_default();
    println!(
        "| sample | transfer syntax | size | open ms | decode_display ms | preprocess ms | model_input ms | model_input peak MB |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (name, window) in [
        ("synthetic CR 12u window", true),
        ("synthetic CR 12u MONO1 min-max", false),
    ] {
        if name.contains(&filter) {
            let obj = synthetic_cr(window);
            row(name, "Explicit VR Little Endian (memory)", runs, || {
                Some((obj.clone(), 0.0))
            });
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dicom-samples");
    let Ok(tsv) = std::fs::read_to_string(dir.join("VERIFY.tsv")) else {
        eprintln!("shared samples not found");
        return;
    };
    for line in tsv.lines().filter(|l| l.starts_with("good/")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = cols[0].trim_start_matches("good/");
        if !name.contains(&filter) {
            continue;
        }
        let path = dir.join(cols[0]);
        row(name, cols[3], runs, || {
            let t = Instant::now();
            let obj = open_dicom(&path).ok()?;
            Some((obj, ms(t)))
        });
    }
}

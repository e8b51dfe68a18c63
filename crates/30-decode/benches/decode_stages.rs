//! Per-stage timings of decoding (not a test): open, decode per transfer syntax, step 0
//! (Modality LUT/VOI/MONOCHROME1) and preprocessing, median of several runs per shared sample.
//! `cargo bench -p radroute-decode` prints a Markdown table. Needs ../shared/data/dicom-samples.

use std::path::PathBuf;
use std::time::Instant;

use radroute_decode::{decode_frame, open_dicom, preprocess, to_display};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dicom-samples");
    let Ok(tsv) = std::fs::read_to_string(dir.join("VERIFY.tsv")) else {
        eprintln!("shared samples not found");
        return;
    };
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "| sample | transfer syntax | size | open ms | decode ms | step 0 ms | preprocess ms |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for line in tsv.lines().filter(|l| l.starts_with("good/")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let path = dir.join(cols[0]);
        let (mut open, mut dec, mut disp, mut pre) = (vec![], vec![], vec![], vec![]);
        let mut size = String::new();
        for _ in 0..runs {
            let t = Instant::now();
            let Ok(obj) = open_dicom(&path) else { break };
            open.push(ms(t));
            let t = Instant::now();
            let Ok(raw) = decode_frame(&obj, 0) else {
                break;
            };
            dec.push(ms(t));
            size = format!("{}x{}", raw.cols, raw.rows);
            let t = Instant::now();
            let Ok((img, _)) = to_display(&obj, raw) else {
                break;
            };
            disp.push(ms(t));
            let t = Instant::now();
            let tensor = preprocess(&img);
            pre.push(ms(t));
            std::hint::black_box(tensor);
        }
        if pre.is_empty() {
            continue;
        }
        let name = cols[0].trim_start_matches("good/");
        println!(
            "| {name} | {} | {size} | {:.1} | {:.1} | {:.1} | {:.1} |",
            cols[3],
            median(open),
            median(dec),
            median(disp),
            median(pre)
        );
    }
}

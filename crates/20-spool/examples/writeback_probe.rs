//! How long a received instance takes to become durable, step by step, written at the end vs
//! while it arrives (issue 14, "measure each step").
//!
//! ```text
//! cargo run --release -p radroute-spool --example writeback_probe -- [--dir DIR] [--mb 10] [--reps 15] [--mbps 600]
//! ```
//!
//! For one instance of `--mb` MB, `--reps` times each, medians (ms):
//! - **at end**: the data set is complete, then `write`, `fsync`, `rename`, directory `fsync`
//!   (what the store step did before write-behind; each step timed);
//! - **as it arrives, no early writeback**: 1 MiB written every time 1 MiB arrives at
//!   `--mbps` MB/s, then `fsync`, `rename`, directory `fsync` after the last byte;
//! - **as it arrives, early writeback** (the local spool's streaming put): the same with
//!   `sync_file_range(SYNC_FILE_RANGE_WRITE)` every 2 MiB.
//!
//! "last byte → durable" is the time the sender waits for its response beyond the transfer.
//! `DIR` must be on the disk under test (default: a temporary directory in the current one).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use radroute_spool::{FileKind, InstanceId, PutStream, Spool};

const CHUNK: usize = 1 << 20;

struct Args {
    dir: Option<PathBuf>,
    mb: usize,
    reps: usize,
    mbps: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        dir: None,
        mb: 10,
        reps: 15,
        mbps: 600.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(&value)),
            "--mb" => a.mb = value.parse().map_err(|e| bad(&e))?,
            "--reps" => a.reps = value.parse().map_err(|e| bad(&e))?,
            "--mbps" => a.mbps = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Steps of one durable write after the last byte: (write, fsync, rename, dir fsync).
fn at_end(dir: &Path, data: &[u8], n: usize) -> std::io::Result<[f64; 4]> {
    let tmp = dir.join(format!("end-{n}.tmp"));
    let target = dir.join(format!("end-{n}.dcm"));
    let t0 = Instant::now();
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    f.write_all(data)?;
    let t1 = Instant::now();
    f.sync_all()?;
    let t2 = Instant::now();
    std::fs::rename(&tmp, &target)?;
    let t3 = Instant::now();
    File::open(dir)?.sync_all()?;
    let t4 = Instant::now();
    Ok([ms(t1 - t0), ms(t2 - t1), ms(t3 - t2), ms(t4 - t3)])
}

/// Writes `data` in 1 MiB pieces paced at `mbps`, as the network would deliver them; returns
/// the instant the last piece "arrived".
fn paced(data: &[u8], mbps: f64, mut write: impl FnMut(&[u8])) -> Instant {
    let start = Instant::now();
    let mut arrived = start;
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        let due = start + Duration::from_secs_f64(((i + 1) * CHUNK) as f64 / (mbps * 1e6));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        arrived = Instant::now().max(due);
        write(chunk);
    }
    arrived
}

/// Written as it arrives without early writeback: (last byte → durable).
fn as_arrives_plain(dir: &Path, data: &[u8], mbps: f64, n: usize) -> std::io::Result<f64> {
    let tmp = dir.join(format!("plain-{n}.tmp"));
    let target = dir.join(format!("plain-{n}.dcm"));
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    let mut failed = None;
    let last = paced(data, mbps, |c| {
        if let Err(e) = f.write_all(c) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    File::open(dir)?.sync_all()?;
    Ok(ms(last.elapsed()))
}

/// The spool's streaming put (early writeback): (last byte → durable).
fn as_arrives_spool(spool: &Spool, data: &[u8], mbps: f64) -> Result<f64, String> {
    let id = InstanceId::generate();
    let mut put = spool
        .begin_store(FileKind::Incoming, &id)
        .map_err(|e| e.to_string())?;
    let mut failed = None;
    let last = paced(data, mbps, |c| {
        if let Err(e) = put.write(c) {
            failed = Some(e.to_string());
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Box::new(put).commit(spool).map_err(|e| e.to_string())?;
    Ok(ms(last.elapsed()))
}

fn main() -> Result<(), String> {
    let a = args()?;
    let base = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir_in("."),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let plain_dir = base.path().join("plain");
    std::fs::create_dir(&plain_dir).map_err(|e| e.to_string())?;
    let spool = Spool::open(&base.path().join("spool")).map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..a.mb * 1_000_000)
        .map(|i| (i * 31 + i / 4099) as u8)
        .collect();
    let (mut end, mut plain, mut stream) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..a.reps {
        // Interleaved, so that a change in the machine's load touches all three alike.
        end.push(at_end(&plain_dir, &data, n).map_err(|e| e.to_string())?);
        plain.push(as_arrives_plain(&plain_dir, &data, a.mbps, n).map_err(|e| e.to_string())?);
        stream.push(as_arrives_spool(&spool, &data, a.mbps)?);
    }
    let step = |i: usize| median(end.iter().map(|s| s[i]).collect());
    let total = median(end.iter().map(|s| s.iter().sum()).collect());
    println!(
        "{} MB instance, {} reps, arrival {} MB/s, dir {} (medians, ms)\n",
        a.mb,
        a.reps,
        a.mbps,
        a.dir.as_deref().unwrap_or(Path::new(".")).display()
    );
    println!("| variant | write | fsync | rename | dir fsync | last byte → durable |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| at end (before) | {:.1} | {:.1} | {:.2} | {:.1} | {total:.1} |",
        step(0),
        step(1),
        step(2),
        step(3)
    );
    println!(
        "| as it arrives, no early writeback | | | | | {:.1} |",
        median(plain)
    );
    println!(
        "| as it arrives, sync_file_range every 2 MiB (spool) | | | | | {:.1} |",
        median(stream)
    );
    Ok(())
}

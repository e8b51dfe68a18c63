//! End-to-end harness for radroute: starts the real `radroute` binary with a generated
//! configuration and a temporary spool, and real DICOM peers over loopback (dcmtk's storescu,
//! storescp, echoscu; Orthanc as a destination PACS; small pynetdicom scripts where dcmtk cannot
//! do what a test needs).
//!
//! Every wait is bounded and fails with a message that includes the daemon's log tail. Each test
//! gets its own temporary directory and free loopback ports, so tests run in parallel.
//!
//! The binary under test is `$RADROUTE_BIN`, else `<workspace>/target/debug/radroute` (build it
//! first: `cargo build -p radroute`). Peers: dcmtk under /usr/bin (override with `$DCMTK_BIN`),
//! Orthanc at /usr/sbin/Orthanc (`$ORTHANC_BIN`), Python with pynetdicom at
//! `<workspace>/.venv/bin/python` (`$RADROUTE_E2E_PYTHON`). Sample files come from
//! `<workspace>/../shared/data/dicom-samples` (`$DICOM_SAMPLES`).

pub mod dcmtk;
pub mod dicom;
pub mod haproxy;
pub mod http;
pub mod orthanc;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod python;
pub mod radroute;
pub mod raw_peer;
pub mod rsyslog;
pub mod storescp;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace root (parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `<workspace>/../shared`, where the sample data and peer scripts live.
pub fn shared_dir() -> PathBuf {
    workspace_root().join("..").join("shared")
}

/// The DICOM sample corpus (`good/`, `malformed/`).
pub fn samples_dir() -> PathBuf {
    std::env::var_os("DICOM_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir().join("data").join("dicom-samples"))
}

/// One file of `good/` or `malformed/`, checked to exist.
pub fn sample(rel: &str) -> PathBuf {
    let p = samples_dir().join(rel);
    assert!(
        p.is_file(),
        "sample file {} is missing (set DICOM_SAMPLES to the dicom-samples folder)",
        p.display()
    );
    p
}

/// A temporary directory for one test (kept, path printed, when `RADROUTE_E2E_KEEP=1`).
pub fn test_dir(name: &str) -> tempfile::TempDir {
    let keep = std::env::var_os("RADROUTE_E2E_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .prefix(&format!("radroute-e2e-{name}-"))
        .disable_cleanup(keep)
        .tempdir()
        .expect("create temp dir");
    if keep {
        eprintln!("[{name}] test dir {}", dir.path().display());
    }
    dir
}

/// Polls `check` every `every` until it returns `Some`, or fails after `timeout` with the message
/// built by `fail` (called once, at the deadline).
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
    fail: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?}: {}", fail());
        }
        std::thread::sleep(every);
    }
}

/// Removes ANSI colour sequences (tracing colours its output even into files).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `n` lines of a text file (empty when unreadable).
pub fn file_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| strip_ansi(&String::from_utf8_lossy(&b)))
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One synthetic instance written by gen_corpus.py.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    /// The file.
    pub path: PathBuf,
    /// Its SOP Instance UID.
    pub sop_instance_uid: String,
}

/// Generates `count` synthetic CR/DX files (uncompressed Explicit VR LE, deterministic per
/// seed) with `<workspace>/../shared/peers/gen_corpus.py` into `dir`; returns them in name order.
pub fn gen_corpus(dir: &Path, count: usize, rows: u32, cols: u32, seed: u64) -> Vec<CorpusFile> {
    let script = shared_dir().join("peers").join("gen_corpus.py");
    assert!(script.is_file(), "{} is missing", script.display());
    let mut cmd = std::process::Command::new(python::python());
    cmd.arg(&script)
        .arg("--out")
        .arg(dir)
        .args(["--count", &count.to_string()])
        .args(["--rows", &rows.to_string(), "--cols", &cols.to_string()])
        .args(["--seed", &seed.to_string()]);
    let (code, out) = dcmtk::run_bounded(cmd, Duration::from_secs(120));
    assert_eq!(code, Some(0), "gen_corpus.py failed:\n{out}");
    // The manifest lands next to the output folder or inside it, depending on the version.
    let manifest = [dir.join("manifest.csv"), dir.with_file_name("manifest.csv")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("gen_corpus.py wrote no manifest.csv:\n{out}"));
    let text = std::fs::read_to_string(&manifest).expect("read manifest");
    let mut files: Vec<CorpusFile> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split(',');
            let name = cols.next().expect("file column");
            let uid = cols.next().expect("sop_instance_uid column");
            CorpusFile {
                path: dir.join(name),
                sop_instance_uid: uid.to_string(),
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        files.len(),
        count,
        "manifest {} lists {} files",
        manifest.display(),
        files.len()
    );
    files
}

//! Replays the committed fuzz corpus (fuzz/corpus/<target>/*) through the same functions the
//! cargo-fuzz targets call, on stable Rust and without cargo-fuzz: part of `cargo test
//! --workspace`, so every CI run re-checks every input the fuzzer kept, crashes fixed included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest single allocation asked for since the last reset: the replay's oracle that no
/// input makes radroute size a buffer from a length it did not check (a panic is not needed
/// for that bug to bite: dicom-parser zero-fills what it was told).
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Past this an allocation is refused outright (it is recorded first), so a regression fails
/// the test instead of zero-filling gigabytes on the CI machine.
const REFUSED_ABOVE: usize = 1 << 30;

/// The system allocator, recording the largest request.
struct Recording;

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > REFUSED_ABOVE {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        if new_size > REFUSED_ABOVE {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Largest allocation a target may ask for: what the fuzz runs used as `-malloc_limit_mb`
/// (fuzz/README.md). radroute-decode decodes frames of up to 2^27 samples by design.
fn allocation_limit(target: &str) -> usize {
    if target == "decode_entry" {
        1 << 30
    } else {
        64 << 20
    }
}

/// Runs `target` on `data`: no panic escapes and no allocation exceeds the target's limit.
fn replay(name: &str, target: radroute_fuzz_targets::Target, input: &std::path::Path) {
    let data = std::fs::read(input).expect("corpus file");
    LARGEST.store(0, Ordering::Relaxed);
    let run = std::panic::catch_unwind(|| target(&data));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(run.is_ok(), "{name}: {} panicked", input.display());
    assert!(
        largest <= allocation_limit(name),
        "{name}: {} allocated {largest} bytes at once",
        input.display()
    );
}

#[test]
fn every_committed_corpus_input_runs_clean() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in radroute_fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{}: empty corpus", dir.display());
        for input in &inputs {
            replay(name, target, input);
        }
        eprintln!("{name}: {} inputs", inputs.len());
    }
}

/// The regression inputs of crashes found by fuzzing (fuzz/regressions/<target>/*), kept
/// apart from the corpus so they are never minimised away.
#[test]
fn crash_regressions_stay_fixed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for (name, target) in radroute_fuzz_targets::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for input in entries {
            replay(name, target, &input.expect("regression entry").path());
        }
    }
}

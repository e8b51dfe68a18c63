//! cargo-fuzz target `decode_entry`: see radroute_fuzz_targets::decode_entry.
//!
//! libfuzzer-sys aborts on every panic, caught or not; radroute-decode catches codec panics by
//! design, so the hook is replaced by a silent one. A panic that escapes the target still
//! aborts (libfuzzer-sys's own catch_unwind around it).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| radroute_fuzz_targets::decode_entry(data)
);

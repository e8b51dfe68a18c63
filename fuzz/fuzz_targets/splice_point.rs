//! cargo-fuzz target `splice_point`: see radroute_fuzz_targets::splice_point.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| radroute_fuzz_targets::splice_point(data));

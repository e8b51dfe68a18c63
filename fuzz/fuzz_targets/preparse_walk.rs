//! cargo-fuzz target `preparse_walk`: see radroute_fuzz_targets::preparse_walk.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| radroute_fuzz_targets::preparse_walk(data));

//! cargo-fuzz target `command_decode`: see radroute_fuzz_targets::command_decode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| radroute_fuzz_targets::command_decode(data));

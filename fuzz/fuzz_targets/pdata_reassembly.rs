//! cargo-fuzz target `pdata_reassembly`: see radroute_fuzz_targets::pdata_reassembly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| radroute_fuzz_targets::pdata_reassembly(data));

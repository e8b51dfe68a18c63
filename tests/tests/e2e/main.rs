//! radroute end to end, with real peers over loopback (see the harness in tests/src).
//! Build the binary first: `cargo build -p radroute && cargo test -p radroute-e2e`.

mod smoke;
mod crash_recovery;
mod malformed;
mod transfer_syntaxes;
mod two_destinations;

//! radroute end to end, with real peers over loopback (see the harness in tests/src).
//! Build the binary first: `cargo build -p radroute && cargo test -p radroute-e2e`.
//! Each test has its own temp dir and loopback ports, so they run in parallel;
//! `RADROUTE_E2E_KEEP=1` keeps the temp dirs (logs, spool, peers) for inspection.

mod admin_api;
mod admission;
mod association;
mod association_reuse;
mod audit;
mod classification;
mod cluster_basic;
mod cluster_database_down;
mod cluster_drain;
mod cluster_failover;
mod cluster_study;
mod cluster_support;
mod cluster_tls;
mod console;
mod correctness;
mod crash_recovery;
mod env_override;
mod first_hour;
mod forward_single_association;
mod hostile_data_sets;
mod hostile_peers;
mod implicit_destination;
mod label_correction;
mod liveness;
mod malformed;
mod receive_stream;
mod reload;
mod routing_rules;
mod spool_leaks;
mod spool_truth;
mod study_routing;
mod transfer_syntaxes;
mod two_destinations;

//! Test helpers shared by the crates' own tests and the e2e suite (`radroute-e2e`).
//!
//! Only test code depends on this crate (as a dev-dependency): it starts real servers in
//! temporary directories, so tests exercise the same PostgreSQL the product runs on instead of a
//! mock. Modules:
//!
//! - [`postgres`]: a throw-away PostgreSQL server (Debian's PostgreSQL 15 binaries), one per
//!   test binary or one per test, with one database per test.
#![deny(missing_docs)]

pub mod postgres;

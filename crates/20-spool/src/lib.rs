//! Durable instance files: write, fsync, rename, purge.
#![deny(missing_docs)]

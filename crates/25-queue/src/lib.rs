//! The durable forward queue: one job per (instance, destination), retries and dead letters.
#![deny(missing_docs)]

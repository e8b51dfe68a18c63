//! The forward queue on PostgreSQL: the [`radroute_queue::ForwardQueue`] trait for cluster
//! mode, where every node of a cluster shares one database, any node can send any job, and
//! the jobs of a node that died are taken over by the others.
//!
//! # Why a crate of its own
//!
//! `radroute-queue` is synchronous and dependency-light (SQLite only); this backend brings
//! tokio, tokio-postgres, deadpool-postgres and refinery. Keeping it apart keeps the trait,
//! the vocabulary and the SQLite backend free of the async stack, and mirrors the storage
//! backend (`radroute-store-postgres`). The same test suite (crates/25-queue/tests/queue.rs)
//! runs against both backends.
//!
//! # Sync trait, async driver
//!
//! [`radroute_queue::ForwardQueue`] is synchronous: the daemon calls it from blocking threads
//! (`spawn_blocking`), and the SQLite backend is synchronous by nature. Rather than an async
//! twin of the trait (every caller would change, and the SQLite backend would need a blocking
//! pool of its own), [`PostgresQueue`] keeps the trait and runs each call's statements with
//! `Handle::block_on` on the runtime that drives the pool's connections (the node's runtime,
//! or a small one of its own for the CLI and tests). Every call is bounded: the pool waits at
//! most the call timeout for a connection, connects within the connect timeout, the server
//! cancels statements past `statement_timeout`, and the whole call gives up after
//! [`PgConfig::call_timeout`]. Connection trouble is `QueueError::Unavailable` (the store step
//! answers A700, the API 503); a broken connection is discarded and the pool opens a new one on
//! the next call, so the queue reconnects by itself when PostgreSQL comes back. Async code
//! (the storage backend's transaction, the cluster wiring) uses the pool directly with
//! [`insert_instance`] and friends.
//!
//! # Tables (migration V1, `migrations/V1__queue.sql`)
//!
//! - `instances`: as in SQLite, plus `received_by` (the node that acknowledged it).
//! - `jobs`: as in SQLite (`id` an identity column, never reused), plus the lease:
//!   `lease_owner` (node id; after the lease, the last holder), `leased_at` (taken or last
//!   renewed), `lease_expires_at`.
//! - `nodes(node_id, started_at, heartbeat_at, state up|draining|left)`: heartbeats, written by
//!   the cluster wiring ([`PostgresQueue::heartbeat`]), read by the takeover.
//! - `radroute_queue_schema`: refinery's history (see [`migrate`]).
//!
//! # Lease guarantees
//!
//! - **Exclusive**: `lease` picks due jobs with `FOR UPDATE SKIP LOCKED` and sets them
//!   `in_flight` with this node as owner in the same statement: two nodes (or two workers)
//!   never hold the same job at once.
//! - **Bounded**: a lease is void once it expires (`lease_ttl`, extended by `renew`), once its
//!   owner has not heartbeated for `takeover_after` (or left), or once it is older than the
//!   watchdog's limit; `release_stale`, called periodically by every node, requeues void leases
//!   (attempt not counted), so a dead node's jobs are sent by another within
//!   `takeover_after` + the watchdog period.
//! - **Fenced completion**: `complete` records an outcome only while the job is still
//!   `in_flight` and owned by this node; a node that lost its lease (paused, partitioned) gets
//!   `QueueError::JobState` and its late outcome is dropped. Its send may still have reached the
//!   destination, so a takeover can deliver an instance twice: a repeated C-STORE of the same
//!   SOP Instance UID, which PACS treat as the same instance (at-least-once delivery).
//! - **Own leases only at start-up**: `recover` requeues this node's leases from its previous
//!   run, never those of live peers; received instances of dead nodes are offered to the others
//!   by `pending_processing`.
//! - Times come from the callers' clocks (as in SQLite): node clocks must agree to well within
//!   `takeover_after` (NTP).
//! - A node with no row in `nodes` counts as dead to the others: a node must heartbeat before
//!   it leases (and keep doing so more often than `takeover_after`).
//!
//! Text columns are ordered with `COLLATE "C"` (byte order, as SQLite does) whatever the
//! database's collation, so both backends list in the same order.
#![deny(missing_docs)]

mod admin;
mod config;
mod errors;
pub mod migrate;
mod pipeline;
mod queue;
mod rows;

pub use config::{PasswordSource, PgConfig};
pub use migrate::migrate;
pub use pipeline::insert_instance;
pub use queue::{PgQueueOptions, PostgresQueue};

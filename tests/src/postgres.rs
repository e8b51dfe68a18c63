//! PostgreSQL for the cluster tests: the throw-away server of `radroute-testkit` (one per test
//! binary with [`PgServer::shared`], one database per test with [`PgServer::new_database`];
//! [`PgServer::start`] for a test that stops and restarts it). Re-exported so that e2e tests and
//! crate tests start PostgreSQL the same way.

pub use radroute_testkit::postgres::{PgOptions, PgServer, ServerTls};

//! The `InstanceStore` conformance suite (radroute-spool's, run by the local backend too) on
//! PostgreSQL, for both layouts, each test on a fresh database of one shared test server.

use radroute_store_postgres::{Layout, PgStore, PgStoreOptions};
use radroute_testkit::postgres::PgServer;

fn store(layout: Layout) -> (tempfile::TempDir, PgStore) {
    let url = PgServer::shared().new_database();
    let dir = tempfile::tempdir().unwrap();
    let mut options = PgStoreOptions::new(dir.path().join("scratch"));
    options.layout = layout;
    let store = PgStore::connect(&url, 4, options).unwrap();
    (dir, store)
}

radroute_spool::instance_store_suite!(chunks, crate::store(crate::Layout::Chunks));
radroute_spool::instance_store_suite!(large_objects, crate::store(crate::Layout::LargeObjects));

//! The `InstanceStore` conformance suite on the local backend, the spool directory.

radroute_spool::instance_store_suite!(local_files, {
    let dir = tempfile::tempdir().unwrap();
    let spool = radroute_spool::Spool::open(dir.path()).unwrap();
    (dir, spool)
});

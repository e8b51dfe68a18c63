//! The conformance suite every [`InstanceStore`] backend runs (feature `suite`).
//!
//! Each function checks one part of the trait's contract on an empty store and panics on a
//! violation. [`crate::instance_store_suite!`] turns them into `#[test]`s for a backend:
//!
//! ```ignore
//! radroute_spool::instance_store_suite!(local_files, {
//!     let dir = tempfile::tempdir().unwrap();
//!     let spool = radroute_spool::Spool::open(dir.path()).unwrap();
//!     (dir, spool)
//! });
//! ```
//!
//! The expression yields `(guard, store)` for one test: the guard keeps whatever the store
//! needs alive (a temporary directory, a database) and `&store` must coerce to a
//! `&dyn InstanceStore` (a backend type, or a `Box<dyn InstanceStore>`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{FileKind, InstanceId, InstanceStore, SpoolError};

/// Generates one `#[test]` per suite function in a module `$name`, each on a fresh store made
/// by `$make` (see the module documentation).
#[macro_export]
macro_rules! instance_store_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::instance_store_suite!(@tests $make;
                round_trip, missing_is_not_found, derived_put_replaces, remove_kind_and_remove,
                sizes_and_part_boundaries, quarantine_hides_and_keeps, concurrent_puts,
                stat_time_is_when_written, put_stream_commits, put_stream_abort_leaves_nothing,
                put_stream_crash_before_commit_leaves_nothing_visible);
        }
    };
    (@tests $make:expr; $($test:ident),*) => {
        $(
            #[test]
            fn $test() {
                let (_guard, store) = $make;
                $crate::suite::$test(&store);
            }
        )*
    };
}

/// Deterministic, position-dependent content, so a reordered or shifted chunk is detected.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(i as u32 >> 11) as u8 ^ seed)
        .collect()
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(SpoolError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Put, read, list, contains, stat, usage, local_file, free_bytes and check_ready agree.
pub fn round_trip(store: &dyn InstanceStore) {
    let a = InstanceId::generate();
    let b = InstanceId::generate();
    store.put(FileKind::Incoming, &a, &[b"first"]).unwrap();
    store
        .put(FileKind::Incoming, &b, &[b"DICM", b"", b"-data"])
        .unwrap();
    store.put(FileKind::Processed, &a, &[b"labelled"]).unwrap();

    assert_eq!(store.read(FileKind::Incoming, &a).unwrap(), b"first");
    assert_eq!(store.read(FileKind::Incoming, &b).unwrap(), b"DICM-data");
    assert_eq!(store.read(FileKind::Processed, &a).unwrap(), b"labelled");
    assert_eq!(
        store.list(FileKind::Incoming).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.list(FileKind::Processed).unwrap(), vec![a.clone()]);
    assert!(store.list(FileKind::Header).unwrap().is_empty());
    assert!(store.contains(FileKind::Processed, &a).unwrap());
    assert!(!store.contains(FileKind::Processed, &b).unwrap());
    assert_eq!(store.stat(FileKind::Incoming, &b).unwrap().bytes, 9);
    let usage = store.usage().unwrap();
    assert_eq!((usage.files, usage.bytes), (3, 5 + 9 + 8));
    let file = store.local_file(FileKind::Incoming, &b).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"DICM-data");
    assert!(store.free_bytes().unwrap() > 0);
    store.check_ready().unwrap();
}

/// Missing objects read as `NotFound`; removing them is not an error.
pub fn missing_is_not_found(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    assert_not_found(store.read(FileKind::Incoming, &id), "read");
    assert_not_found(store.stat(FileKind::Header, &id), "stat");
    assert_not_found(store.local_file(FileKind::Processed, &id), "local_file");
    assert!(!store.contains(FileKind::Incoming, &id).unwrap());
    store.remove_kind(FileKind::Processed, &id).unwrap();
    store.remove(&id).unwrap();
    // A removed instance is gone from every view, the local file included.
    store.put(FileKind::Incoming, &id, &[b"x"]).unwrap();
    let file = store.local_file(FileKind::Incoming, &id).unwrap();
    store.remove(&id).unwrap();
    assert_not_found(store.read(FileKind::Incoming, &id), "read after remove");
    assert_not_found(
        store.local_file(FileKind::Incoming, &id),
        "local_file after remove",
    );
    assert!(!file.exists(), "local copy {} left behind", file.display());
    assert!(store.list(FileKind::Incoming).unwrap().is_empty());
}

/// A derived object is replaced by a later put of the same id and kind.
pub fn derived_put_replaces(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    store.put(FileKind::Incoming, &id, &[b"pixels"]).unwrap();
    for kind in [FileKind::Processed, FileKind::Header] {
        store
            .put(kind, &id, &[&pattern(3 << 20, 1)])
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        store.put(kind, &id, &[b"new"]).unwrap();
        assert_eq!(store.read(kind, &id).unwrap(), b"new", "{kind}");
        assert_eq!(store.stat(kind, &id).unwrap().bytes, 3, "{kind}");
        let file = store.local_file(kind, &id).unwrap();
        assert_eq!(std::fs::read(file).unwrap(), b"new", "{kind} local file");
    }
    assert_eq!(store.usage().unwrap().bytes, 6 + 3 + 3);
}

/// `remove_kind` takes one kind; `remove` takes them all.
pub fn remove_kind_and_remove(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    let other = InstanceId::generate();
    for kind in FileKind::ALL {
        store.put(kind, &id, &[kind.dir_name().as_bytes()]).unwrap();
    }
    store.put(FileKind::Incoming, &other, &[b"kept"]).unwrap();
    store.remove_kind(FileKind::Processed, &id).unwrap();
    assert!(!store.contains(FileKind::Processed, &id).unwrap());
    assert!(store.contains(FileKind::Header, &id).unwrap());
    assert_eq!(store.usage().unwrap().files, 3);
    store.remove(&id).unwrap();
    for kind in FileKind::ALL {
        assert!(!store.contains(kind, &id).unwrap(), "{kind} left");
    }
    assert_eq!(store.list(FileKind::Incoming).unwrap(), vec![other.clone()]);
    assert_eq!(store.read(FileKind::Incoming, &other).unwrap(), b"kept");
}

/// Empty, small and large objects (across any chunking a backend uses), given in parts whose
/// boundaries fall anywhere, come back byte for byte.
pub fn sizes_and_part_boundaries(store: &dyn InstanceStore) {
    const MIB: usize = 1 << 20;
    for (n, len) in [0, 1, MIB - 1, MIB, MIB + 1, 10_000_003]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, n as u8);
        let cut1 = len / 3;
        let cut2 = (len / 3 * 2).max(cut1);
        let id = InstanceId::generate();
        store
            .put(
                FileKind::Incoming,
                &id,
                &[&data[..cut1], &[], &data[cut1..cut2], &data[cut2..]],
            )
            .unwrap_or_else(|e| panic!("put {len} bytes: {e}"));
        let back = store.read(FileKind::Incoming, &id).unwrap();
        assert!(back == data, "{len} bytes: content differs");
        assert_eq!(
            store.stat(FileKind::Incoming, &id).unwrap().bytes,
            len as u64
        );
        let file = store.local_file(FileKind::Incoming, &id).unwrap();
        assert!(
            std::fs::read(file).unwrap() == data,
            "{len} bytes: local file differs"
        );
    }
}

/// A quarantined object is hidden from every view but kept; quarantining it again is `NotFound`.
pub fn quarantine_hides_and_keeps(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    store.put(FileKind::Incoming, &id, &[b"not dicom"]).unwrap();
    store.put(FileKind::Header, &id, &[b"header"]).unwrap();
    let place = store.quarantine(FileKind::Incoming, &id).unwrap();
    assert!(!place.is_empty());
    assert!(!store.contains(FileKind::Incoming, &id).unwrap());
    assert!(store.list(FileKind::Incoming).unwrap().is_empty());
    assert_not_found(store.read(FileKind::Incoming, &id), "read quarantined");
    assert_not_found(
        store.quarantine(FileKind::Incoming, &id),
        "quarantine twice",
    );
    assert!(store.contains(FileKind::Header, &id).unwrap());
    // The same id may be stored again (a re-sent instance gets a new id anyway).
    store.put(FileKind::Incoming, &id, &[b"again"]).unwrap();
    assert_eq!(store.read(FileKind::Incoming, &id).unwrap(), b"again");
}

/// Puts from several threads at once all land, each with its own content.
pub fn concurrent_puts(store: &dyn InstanceStore) {
    let ids: Vec<InstanceId> = (0..16).map(|_| InstanceId::generate()).collect();
    std::thread::scope(|s| {
        for (t, chunk) in ids.chunks(4).enumerate() {
            s.spawn(move || {
                for (i, id) in chunk.iter().enumerate() {
                    let data = pattern(300_000 + i, (t * 4 + i) as u8);
                    store.put(FileKind::Incoming, id, &[&data]).unwrap();
                }
            });
        }
    });
    for (n, id) in ids.iter().enumerate() {
        let want = pattern(300_000 + n % 4, n as u8);
        assert!(store.read(FileKind::Incoming, id).unwrap() == want, "{id}");
    }
    let listed: Arc<[InstanceId]> = store.list(FileKind::Incoming).unwrap().into();
    assert_eq!(listed.len(), ids.len());
}

/// `stat`'s time is when the object was written (the purger's and recovery's age).
pub fn stat_time_is_when_written(store: &dyn InstanceStore) {
    let before = SystemTime::now() - Duration::from_secs(2);
    let id = InstanceId::generate();
    store.put(FileKind::Incoming, &id, &[b"12345"]).unwrap();
    let after = SystemTime::now() + Duration::from_secs(2);
    let st = store.stat(FileKind::Incoming, &id).unwrap();
    assert_eq!(st.bytes, 5);
    assert!(
        st.modified > before && st.modified < after,
        "{:?}",
        st.modified
    );
}

/// A streaming put written in pieces of every size (across any writeback or chunk boundary)
/// becomes visible, byte for byte, only at commit; a derived kind replaces an earlier object.
pub fn put_stream_commits(store: &dyn InstanceStore) {
    const MIB: usize = 1 << 20;
    let data = pattern(10 * MIB + 3, 7);
    let id = InstanceId::generate();
    let mut put = store.begin_put(FileKind::Incoming, &id).unwrap();
    let mut at = 0;
    for len in [0, 1, 131, 64 << 10, MIB - 1, 3 * MIB, 5 * MIB]
        .into_iter()
        .cycle()
    {
        let end = (at + len).min(data.len());
        put.write(&data[at..end]).unwrap();
        at = end;
        if at == data.len() {
            break;
        }
    }
    assert_eq!(put.written(), data.len() as u64);
    assert!(
        !store.contains(FileKind::Incoming, &id).unwrap(),
        "visible before commit"
    );
    assert!(store.list(FileKind::Incoming).unwrap().is_empty());
    put.commit(store).unwrap();
    assert!(store.read(FileKind::Incoming, &id).unwrap() == data);
    assert_eq!(
        store.stat(FileKind::Incoming, &id).unwrap().bytes,
        data.len() as u64
    );
    let file = store.local_file(FileKind::Incoming, &id).unwrap();
    assert!(std::fs::read(file).unwrap() == data, "local file differs");
    assert_eq!(store.list(FileKind::Incoming).unwrap(), vec![id.clone()]);

    store.put(FileKind::Header, &id, &[b"old header"]).unwrap();
    let mut put = store.begin_put(FileKind::Header, &id).unwrap();
    put.write(b"new ").unwrap();
    put.write(b"header").unwrap();
    put.commit(store).unwrap();
    assert_eq!(store.read(FileKind::Header, &id).unwrap(), b"new header");
}

/// A streaming put dropped before commit (a refused data set, an aborted association) leaves
/// nothing: not the new object, not a changed earlier one, no space used.
pub fn put_stream_abort_leaves_nothing(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    let mut put = store.begin_put(FileKind::Incoming, &id).unwrap();
    put.write(&pattern(3 << 20, 2)).unwrap();
    drop(put);
    assert!(!store.contains(FileKind::Incoming, &id).unwrap());
    assert_not_found(store.read(FileKind::Incoming, &id), "read aborted");
    assert!(store.list(FileKind::Incoming).unwrap().is_empty());
    assert_eq!(store.usage().unwrap(), crate::Usage::default());

    // An aborted replacement keeps the earlier derived object as it was.
    store.put(FileKind::Processed, &id, &[b"kept"]).unwrap();
    let mut put = store.begin_put(FileKind::Processed, &id).unwrap();
    put.write(b"discarded").unwrap();
    drop(put);
    assert_eq!(store.read(FileKind::Processed, &id).unwrap(), b"kept");
    // The id can still be stored.
    let mut put = store.begin_put(FileKind::Incoming, &id).unwrap();
    put.write(b"again").unwrap();
    put.commit(store).unwrap();
    assert_eq!(store.read(FileKind::Incoming, &id).unwrap(), b"again");
}

/// A process that dies before commit (simulated: the stream is leaked, so neither commit nor
/// the abort of drop runs) leaves nothing visible under the id; the local spool's temporary file
/// stays in `tmp/` until the next open removes it.
pub fn put_stream_crash_before_commit_leaves_nothing_visible(store: &dyn InstanceStore) {
    let id = InstanceId::generate();
    let mut put = store.begin_put(FileKind::Incoming, &id).unwrap();
    put.write(&pattern(5 << 20, 3)).unwrap();
    std::mem::forget(put);
    assert!(!store.contains(FileKind::Incoming, &id).unwrap());
    assert_not_found(store.stat(FileKind::Incoming, &id), "stat of a crashed put");
    assert_not_found(
        store.local_file(FileKind::Incoming, &id),
        "local_file of a crashed put",
    );
    assert!(store.list(FileKind::Incoming).unwrap().is_empty());
    assert_eq!(store.usage().unwrap().files, 0);
}

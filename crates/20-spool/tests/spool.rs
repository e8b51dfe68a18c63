//! Behaviour of the spool on a real directory, with faults injected through `SpoolFs`.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use radroute_spool::fs::{RealFs, SpoolFs};
use radroute_spool::{FileKind, InstanceId, Spool, SpoolError};

fn tmp_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn store_read_list_remove_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let a = InstanceId::generate();
    let b = InstanceId::generate();

    let pa = spool.store(FileKind::Incoming, &a, b"first").unwrap();
    assert_eq!(pa, spool.path(FileKind::Incoming, &a));
    assert_eq!(pa, dir.path().join("incoming").join(format!("{a}.dcm")));
    spool
        .store_parts(FileKind::Incoming, &b, &[b"DICM", b"", b"-data"])
        .unwrap();
    spool.store(FileKind::Processed, &a, b"labelled").unwrap();

    assert_eq!(spool.read(FileKind::Incoming, &a).unwrap(), b"first");
    assert_eq!(spool.read(FileKind::Incoming, &b).unwrap(), b"DICM-data");
    assert_eq!(spool.read(FileKind::Processed, &a).unwrap(), b"labelled");
    assert_eq!(
        spool.list(FileKind::Incoming).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(spool.list(FileKind::Processed).unwrap(), vec![a.clone()]);
    let usage = spool.usage().unwrap();
    assert_eq!((usage.files, usage.bytes), (3, 5 + 9 + 8));
    assert!(spool.free_bytes().unwrap() > 0);
    assert!(tmp_entries(dir.path()).is_empty());

    spool.remove(&a).unwrap();
    assert!(!spool.contains(FileKind::Incoming, &a));
    assert!(!spool.contains(FileKind::Processed, &a));
    spool.remove(&a).unwrap(); // missing files are ignored
    match spool.read(FileKind::Incoming, &a) {
        Err(SpoolError::NotFound { kind, id, .. }) => {
            assert_eq!(kind, FileKind::Incoming);
            assert_eq!(id, a.to_string());
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(spool.list(FileKind::Incoming).unwrap(), vec![b]);
}

#[test]
fn processed_store_replaces_earlier_file() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    spool
        .store(FileKind::Processed, &id, b"old, longer content")
        .unwrap();
    spool.store(FileKind::Processed, &id, b"new").unwrap();
    assert_eq!(spool.read(FileKind::Processed, &id).unwrap(), b"new");
}

#[test]
fn remove_kind_and_remove_cover_header_files() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    spool.store(FileKind::Incoming, &id, b"whole").unwrap();
    spool.store(FileKind::Processed, &id, b"coerced").unwrap();
    spool.store(FileKind::Header, &id, b"header").unwrap();
    spool.remove_kind(FileKind::Processed, &id).unwrap();
    assert!(!spool.contains(FileKind::Processed, &id));
    assert!(spool.contains(FileKind::Header, &id));
    // Removing what is not there is not an error.
    spool.remove_kind(FileKind::Processed, &id).unwrap();
    assert_eq!(spool.usage().unwrap().files, 2);
    spool.remove(&id).unwrap();
    for kind in FileKind::ALL {
        assert!(!spool.contains(kind, &id), "{kind} file left after remove");
    }
}

#[test]
fn list_skips_foreign_names() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    spool.store(FileKind::Incoming, &id, b"x").unwrap();
    std::fs::write(dir.path().join("incoming/README"), b"x").unwrap();
    std::fs::write(dir.path().join("incoming/.dcm"), b"x").unwrap();
    std::fs::write(dir.path().join("incoming/a b.dcm"), b"x").unwrap();
    assert_eq!(spool.list(FileKind::Incoming).unwrap(), vec![id]);
}

#[test]
fn open_removes_crash_leftovers_and_keeps_stored_files() {
    let dir = tempfile::tempdir().unwrap();
    let id = InstanceId::generate();
    {
        let spool = Spool::open(dir.path()).unwrap();
        spool.store(FileKind::Incoming, &id, b"kept").unwrap();
    }
    std::fs::write(dir.path().join("tmp/x.incoming.0.tmp"), b"partial").unwrap();
    std::fs::create_dir(dir.path().join("tmp/stray")).unwrap();
    std::fs::write(dir.path().join("tmp/stray/f"), b"partial").unwrap();

    let spool = Spool::open(dir.path()).unwrap();
    assert!(tmp_entries(dir.path()).is_empty());
    assert_eq!(spool.read(FileKind::Incoming, &id).unwrap(), b"kept");
}

#[test]
fn second_open_of_same_directory_is_refused_until_drop() {
    let dir = tempfile::tempdir().unwrap();
    let first = Spool::open(dir.path()).unwrap();
    assert!(matches!(
        Spool::open(dir.path()),
        Err(SpoolError::Locked { .. })
    ));
    drop(first);
    Spool::open(dir.path()).unwrap();
}

#[test]
fn open_creates_nested_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/spool");
    Spool::open(&root).unwrap();
    for sub in ["incoming", "processed", "header", "tmp"] {
        assert!(root.join(sub).is_dir());
    }
}

/// Which operation the faulty file system fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Writes half of the data, then fails with ENOSPC.
    DiskFullMidWrite,
    /// Rename fails with EIO.
    Rename,
    /// Directory fsync fails with EIO (only once `armed`).
    SyncDir,
}

#[derive(Debug)]
struct FaultyFs {
    fault: Fault,
    armed: AtomicBool,
}

impl FaultyFs {
    fn new(fault: Fault) -> Arc<FaultyFs> {
        Arc::new(FaultyFs {
            fault,
            armed: AtomicBool::new(false),
        })
    }
    fn fails(&self, f: Fault) -> bool {
        self.fault == f && self.armed.load(Ordering::SeqCst)
    }
}

impl SpoolFs for FaultyFs {
    fn write_new(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        if self.fails(Fault::DiskFullMidWrite) {
            let all = parts.concat();
            std::fs::write(path, &all[..all.len() / 2])?;
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        RealFs.write_new(path, parts)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.fails(Fault::Rename) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.fails(Fault::SyncDir) {
            return Err(io::Error::from_raw_os_error(5));
        }
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
}

fn store_with_fault(fault: Fault) -> (tempfile::TempDir, Spool, InstanceId, SpoolError) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new(fault);
    let spool = Spool::open_with(dir.path(), fs.clone()).unwrap();
    fs.armed.store(true, Ordering::SeqCst);
    let id = InstanceId::generate();
    let err = spool
        .store_parts(FileKind::Incoming, &id, &[&[1u8; 1000], &[2u8; 1000]])
        .unwrap_err();
    assert!(!spool.path(FileKind::Incoming, &id).exists(), "{err}");
    assert!(tmp_entries(dir.path()).is_empty(), "{err}");
    assert!(spool.list(FileKind::Incoming).unwrap().is_empty());
    (dir, spool, id, err)
}

#[test]
fn disk_full_is_typed_and_leaves_nothing() {
    let (_dir, _spool, _id, err) = store_with_fault(Fault::DiskFullMidWrite);
    assert!(err.is_storage_full(), "{err}");
    match err {
        SpoolError::StorageFull { op, path, .. } => {
            assert_eq!(op, "write");
            assert!(path.to_string_lossy().ends_with(".tmp"));
        }
        other => panic!("expected StorageFull, got {other:?}"),
    }
}

#[test]
fn rename_failure_is_typed_and_leaves_nothing() {
    let (_dir, _spool, _id, err) = store_with_fault(Fault::Rename);
    assert!(
        matches!(
            err,
            SpoolError::Io {
                op: "rename into",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_storage_full());
}

#[test]
fn directory_fsync_failure_is_typed_and_withdraws_the_file() {
    let (_dir, _spool, _id, err) = store_with_fault(Fault::SyncDir);
    assert!(
        matches!(
            err,
            SpoolError::Io {
                op: "fsync directory",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn permission_denied_is_typed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(tmp.join("probe"), b"").is_ok() {
        // Running as root: permissions are not enforced; the trait-based tests cover this.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
        return;
    }
    let id = InstanceId::generate();
    let err = spool.store(FileKind::Incoming, &id, b"x").unwrap_err();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
    match &err {
        SpoolError::Io { op, source, .. } => {
            assert_eq!(*op, "write");
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(!spool.path(FileKind::Incoming, &id).exists());
}

/// A reader polling the final names while large files are written only ever sees complete
/// files.
#[test]
fn final_name_only_ever_shows_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    const SIZE: usize = 4 << 20;
    let ids: Vec<InstanceId> = (0..8).map(|_| InstanceId::generate()).collect();
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (spool, ids, done) = (spool.clone(), ids.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = 0usize;
            while !done.load(Ordering::SeqCst) {
                for id in &ids {
                    if let Ok(bytes) = spool.read(FileKind::Incoming, id) {
                        assert_eq!(bytes.len(), SIZE, "partial file visible for {id}");
                        assert!(bytes.iter().all(|&b| b == 7));
                        seen += 1;
                    }
                }
            }
            seen
        })
    };
    let data = vec![7u8; SIZE];
    for id in &ids {
        spool
            .store_parts(FileKind::Incoming, id, &[&data[..1000], &data[1000..]])
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    assert_eq!(spool.list(FileKind::Incoming).unwrap().len(), ids.len());
}

/// Records the files removed, in order (the rest is the real file system).
#[derive(Debug, Default)]
struct RecordingFs {
    removed: std::sync::Mutex<Vec<String>>,
}

impl SpoolFs for RecordingFs {
    fn write_new(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        RealFs.write_new(path, parts)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().and_then(Path::file_name).unwrap_or_default();
        self.removed
            .lock()
            .unwrap()
            .push(dir.to_string_lossy().into_owned());
        RealFs.remove_file(path)
    }
}

/// An interrupted purge must never leave a header without the incoming pixels it is joined to:
/// the incoming file is removed last.
#[test]
fn remove_takes_the_incoming_file_last() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(RecordingFs::default());
    let spool = Spool::open_with(dir.path(), fs.clone()).unwrap();
    let id = InstanceId::generate();
    for kind in FileKind::ALL {
        spool.store(kind, &id, b"x").unwrap();
    }
    spool.remove(&id).unwrap();
    let removed = fs.removed.lock().unwrap().clone();
    assert_eq!(
        removed.last().map(String::as_str),
        Some("incoming"),
        "{removed:?}"
    );
    assert_eq!(removed.len(), 3, "{removed:?}");
}

#[test]
fn quarantine_moves_the_file_aside_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    spool.store(FileKind::Incoming, &id, b"not dicom").unwrap();
    let moved = spool.quarantine(FileKind::Incoming, &id).unwrap();
    assert_eq!(
        moved,
        dir.path()
            .join("quarantine")
            .join(format!("{id}.incoming.dcm"))
    );
    assert_eq!(std::fs::read(&moved).unwrap(), b"not dicom");
    assert!(!spool.contains(FileKind::Incoming, &id));
    assert!(spool.list(FileKind::Incoming).unwrap().is_empty());
    assert!(matches!(
        spool.quarantine(FileKind::Incoming, &id),
        Err(SpoolError::NotFound { .. })
    ));
    // A reopened spool leaves the quarantine alone.
    drop(spool);
    let _spool = Spool::open(dir.path()).unwrap();
    assert!(moved.is_file());
}

#[test]
fn stat_gives_size_and_time_written() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    spool.store(FileKind::Incoming, &id, b"12345").unwrap();
    let st = spool.stat(FileKind::Incoming, &id).unwrap();
    assert_eq!(st.bytes, 5);
    assert!(st.modified >= before, "{st:?}");
    assert!(matches!(
        spool.stat(FileKind::Header, &id),
        Err(SpoolError::NotFound { .. })
    ));
}

#[test]
fn streaming_store_writes_in_tmp_and_renames_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    let mut put = spool.begin_store(FileKind::Incoming, &id).unwrap();
    let data = radroute_spool::suite::pattern(9 << 20, 5);
    for chunk in data.chunks(1 << 20) {
        radroute_spool::PutStream::write(&mut put, chunk).unwrap();
    }
    // Written as it came: the bytes are already in the temporary file, nothing is final yet.
    let tmp = tmp_entries(dir.path());
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    assert_eq!(
        std::fs::metadata(dir.path().join("tmp").join(&tmp[0]))
            .unwrap()
            .len(),
        data.len() as u64
    );
    assert!(!spool.contains(FileKind::Incoming, &id));
    radroute_spool::PutStream::commit(Box::new(put), &spool).unwrap();
    assert!(tmp_entries(dir.path()).is_empty());
    assert!(spool.read(FileKind::Incoming, &id).unwrap() == data);
}

#[test]
fn streaming_store_dropped_removes_its_tmp_file() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let id = InstanceId::generate();
    let mut put = spool.begin_store(FileKind::Incoming, &id).unwrap();
    radroute_spool::PutStream::write(&mut put, &[1u8; 4 << 20]).unwrap();
    assert_eq!(tmp_entries(dir.path()).len(), 1);
    drop(put);
    assert!(tmp_entries(dir.path()).is_empty());
    assert!(spool.list(FileKind::Incoming).unwrap().is_empty());
}

#[test]
fn streaming_store_left_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let id = InstanceId::generate();
    {
        let spool = Spool::open(dir.path()).unwrap();
        let mut put = spool.begin_store(FileKind::Incoming, &id).unwrap();
        radroute_spool::PutStream::write(&mut put, b"half a data set").unwrap();
        std::mem::forget(put);
        assert_eq!(tmp_entries(dir.path()).len(), 1);
    }
    let spool = Spool::open(dir.path()).unwrap();
    assert!(tmp_entries(dir.path()).is_empty());
    assert!(!spool.contains(FileKind::Incoming, &id));
}

#[test]
fn streaming_store_failing_rename_or_dir_sync_leaves_nothing() {
    for fault in [Fault::Rename, Fault::SyncDir] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(fault);
        let spool = Spool::open_with(dir.path(), fs.clone()).unwrap();
        fs.armed.store(true, Ordering::SeqCst);
        let id = InstanceId::generate();
        let mut put = spool.begin_store(FileKind::Incoming, &id).unwrap();
        radroute_spool::PutStream::write(&mut put, &[7u8; 3 << 20]).unwrap();
        let err = radroute_spool::PutStream::commit(Box::new(put), &spool).unwrap_err();
        assert!(matches!(err, SpoolError::Io { .. }), "{fault:?}: {err:?}");
        assert!(!spool.contains(FileKind::Incoming, &id), "{fault:?}");
        assert!(tmp_entries(dir.path()).is_empty(), "{fault:?}");
    }
}

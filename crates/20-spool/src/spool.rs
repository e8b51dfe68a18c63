//! The spool directory: durable writes, reads, listing and purge of instance files.
//!
//! # Layout
//!
//! ```text
//! <root>/.lock                advisory flock, held for the life of the Spool
//! <root>/incoming/<id>.dcm    as received (Part-10 file)
//! <root>/processed/<id>.dcm   after coercion, whole
//! <root>/header/<id>.dcm      after coercion, header only (pixels stay in incoming/)
//! <root>/tmp/<id>.<kind>.<n>.tmp   being written
//! <root>/quarantine/<id>.<kind>.dcm  moved aside: unreadable, never deleted (created on demand)
//! ```
//!
//! # Invariants
//!
//! - A file under `incoming/`, `processed/` or `header/` is complete: it was written in `tmp/`, `fsync`ed,
//!   renamed into place (rename is atomic within one file system, and `tmp/` is on the same file
//!   system as its siblings), and the target directory was `fsync`ed before
//!   [`Spool::store`] returned `Ok`. Only after that may the daemon acknowledge a C-STORE.
//! - If `store` returns an error, no file is left under the final name by this call and its
//!   temporary file has been removed (best effort). For [`FileKind::Processed`] and
//!   [`FileKind::Header`] a store replaces an earlier file of the same id (re-processing after a
//!   restart); the caller removes the other of the two with [`Spool::remove_kind`].
//! - One `Spool` per root directory: [`Spool::open`] takes an exclusive, non-blocking `flock` on
//!   `<root>/.lock`, so no other spool can be writing into `tmp/` when it is emptied.
//!
//! # The spool is the source of truth
//!
//! A file under `incoming/` is an instance exactly as it was received, complete (see above).
//! The queue database only indexes them; when the two disagree the spool wins. A crash or an
//! operational accident can leave:
//!
//! - (a) files in `tmp/`: incomplete and never acknowledged; `open` deletes them (the only
//!   files the spool ever deletes on its own);
//! - (b) a complete `incoming/` file the queue does not know (a crash between the spool write
//!   and the queue commit, a lost or older queue database): the daemon re-ingests it as a
//!   received instance, or, when it does not read as Part 10, moves it aside with
//!   [`Spool::quarantine`]; it never deletes it;
//! - (c) a processed or header file of an instance that is to be processed again: it is stale,
//!   and the daemon removes it before processing (which writes a fresh one, or none);
//! - (d) files of an instance whose purge was interrupted: [`Spool::remove`] deletes the
//!   derived files first and the incoming file last, so the incoming file is the last trace,
//!   and the daemon finishes the purge.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::fs::{RealFs, SpoolFs};
use crate::{InstanceId, Result, SpoolError};

/// File name extension of spooled instances.
const EXT: &str = "dcm";
/// Sub-directory of files moved aside by [`Spool::quarantine`].
const QUARANTINE: &str = "quarantine";

/// Which of the files of an instance is meant.
///
/// An instance has its `Incoming` file and, once processing changed it, at most one of
/// `Processed` or `Header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// The instance exactly as received from the modality.
    Incoming,
    /// The whole instance after coercion (label written); what is forwarded.
    Processed,
    /// The coerced header alone: a Part-10 file holding the data set without Pixel Data and
    /// the elements after it, in the incoming file's transfer syntax. What is forwarded is this
    /// header followed by the incoming file's bytes from Pixel Data on, so a label costs a few
    /// kilobytes of writing instead of a second copy of the pixels.
    Header,
}

impl FileKind {
    /// Every kind, in data-path order.
    pub const ALL: [FileKind; 3] = [FileKind::Incoming, FileKind::Processed, FileKind::Header];

    /// Name of the sub-directory holding files of this kind.
    pub fn dir_name(self) -> &'static str {
        match self {
            FileKind::Incoming => "incoming",
            FileKind::Processed => "processed",
            FileKind::Header => "header",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Disk space taken by spooled instance files (every kind), for metrics and the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of files.
    pub files: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
}

/// Size and modification time of one spool file ([`Spool::stat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification (for an incoming file: when it was stored).
    pub modified: std::time::SystemTime,
}

/// A spool directory, opened and locked. Cheap to share behind an `Arc`; all methods take
/// `&self` and may run concurrently from several blocking threads.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    tmp: PathBuf,
    fs: Arc<dyn SpoolFs>,
    tmp_seq: AtomicU64,
    /// Holds the flock; released when the Spool is dropped.
    _lock: File,
}

impl Spool {
    /// Opens (creating if needed) the spool at `root` on the real file system.
    ///
    /// Creates `incoming/`, `processed/`, `header/` and `tmp/`, takes the directory lock, deletes crash
    /// leftovers in `tmp/` and `fsync`s the directories.
    pub fn open(root: &Path) -> Result<Spool> {
        Spool::open_with(root, Arc::new(RealFs))
    }

    /// Like [`Spool::open`] with the write path going through `fs` (fault injection in tests).
    pub fn open_with(root: &Path, fs: Arc<dyn SpoolFs>) -> Result<Spool> {
        let root_existed = root.is_dir();
        fs::create_dir_all(root).map_err(|e| SpoolError::io("create directory", root, e))?;
        let lock = lock_dir(root)?;
        let tmp = root.join("tmp");
        for dir in FileKind::ALL
            .iter()
            .map(|k| root.join(k.dir_name()))
            .chain([tmp.clone()])
        {
            if !dir.is_dir() {
                fs::create_dir(&dir).map_err(|e| SpoolError::io("create directory", &dir, e))?;
            }
        }
        let spool = Spool {
            root: root.to_path_buf(),
            tmp,
            fs,
            tmp_seq: AtomicU64::new(0),
            _lock: lock,
        };
        spool.clear_tmp()?;
        for kind in FileKind::ALL {
            spool.sync_dir(&spool.dir(kind))?;
        }
        spool.sync_dir(&spool.tmp)?;
        spool.sync_dir(&spool.root)?;
        if !root_existed {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                spool.sync_dir(parent)?;
            }
        }
        Ok(spool)
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file of `kind` for `id` lives (whether or not it exists).
    pub fn path(&self, kind: FileKind, id: &InstanceId) -> PathBuf {
        self.dir(kind).join(format!("{id}.{EXT}"))
    }

    /// Stores `bytes` durably as the `kind` file of `id` and returns its final path.
    ///
    /// On `Ok` the file and its directory entry are on stable storage.
    pub fn store(&self, kind: FileKind, id: &InstanceId, bytes: &[u8]) -> Result<PathBuf> {
        self.store_parts(kind, id, &[bytes])
    }

    /// Like [`Spool::store`] with the content given as consecutive slices (e.g. preamble and
    /// file meta group, then the data set), so callers need not concatenate large buffers.
    pub fn store_parts(&self, kind: FileKind, id: &InstanceId, parts: &[&[u8]]) -> Result<PathBuf> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{id}.{kind}.{seq}.tmp"));
        let target = self.path(kind, id);
        let dir = self.dir(kind);

        if let Err(e) = self.fs.write_new(&tmp, parts) {
            self.discard(&tmp);
            return Err(SpoolError::io("write", tmp, e));
        }
        if let Err(e) = self.fs.rename(&tmp, &target) {
            self.discard(&tmp);
            return Err(SpoolError::io("rename into", target, e));
        }
        if let Err(e) = self.fs.sync_dir(&dir) {
            // The entry may or may not survive a power loss; the caller will answer with a
            // failure, so do not leave an unacknowledged file behind.
            self.discard(&target);
            return Err(SpoolError::io("fsync directory", dir, e));
        }
        Ok(target)
    }

    /// Begins a streaming store of the `kind` file of `id`: a new file in `tmp/`, written as
    /// bytes come (with early writeback) and renamed into place, with the guarantees of
    /// [`Spool::store`], by [`crate::PutStream::commit`]; dropped uncommitted it is removed.
    pub fn begin_store(&self, kind: FileKind, id: &InstanceId) -> Result<crate::put::SpoolPut> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{id}.{kind}.{seq}.tmp"));
        let file = self
            .fs
            .create_new(&tmp)
            .map_err(|e| SpoolError::io("create", &tmp, e))?;
        Ok(crate::put::SpoolPut {
            fs: self.fs.clone(),
            file: Some(file),
            tmp,
            target: self.path(kind, id),
            dir: self.dir(kind),
            written: 0,
            kicked: 0,
        })
    }

    /// Reads the whole `kind` file of `id`.
    pub fn read(&self, kind: FileKind, id: &InstanceId) -> Result<Vec<u8>> {
        let path = self.path(kind, id);
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpoolError::NotFound {
                kind,
                id: id.to_string(),
                path,
            }),
            Err(e) => Err(SpoolError::io("read", path, e)),
        }
    }

    /// True if the `kind` file of `id` exists.
    pub fn contains(&self, kind: FileKind, id: &InstanceId) -> bool {
        self.path(kind, id).is_file()
    }

    /// Removes every file of `id` (missing ones are ignored) and `fsync`s the directories that
    /// changed, so a purge is not undone by a power loss. The derived files go first and the
    /// incoming file last: an interrupted removal never leaves a header without the pixels it
    /// is joined to.
    pub fn remove(&self, id: &InstanceId) -> Result<()> {
        for kind in FileKind::ALL.iter().rev() {
            self.remove_kind(*kind, id)?;
        }
        Ok(())
    }

    /// Moves the `kind` file of `id` aside into `<root>/quarantine/` (created on demand) and
    /// returns its new path. For a file that cannot be used (it does not read as Part 10) but
    /// may hold an acknowledged instance: an operator decides, the spool never deletes it.
    /// Both directories are `fsync`ed, so the move survives a power loss.
    pub fn quarantine(&self, kind: FileKind, id: &InstanceId) -> Result<PathBuf> {
        let dir = self.root.join(QUARANTINE);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| SpoolError::io("create directory", &dir, e))?;
            self.sync_dir(&self.root)?;
        }
        let from = self.path(kind, id);
        let to = dir.join(format!("{id}.{kind}.{EXT}"));
        if !from.is_file() {
            return Err(SpoolError::NotFound {
                kind,
                id: id.to_string(),
                path: from,
            });
        }
        self.fs
            .rename(&from, &to)
            .map_err(|e| SpoolError::io("move into quarantine", &to, e))?;
        self.sync_dir(&dir)?;
        self.sync_dir(&self.dir(kind))?;
        Ok(to)
    }

    /// Size and modification time of the `kind` file of `id` (the modification time of an
    /// incoming file is when it was received: spool files are written once).
    pub fn stat(&self, kind: FileKind, id: &InstanceId) -> Result<FileStat> {
        let path = self.path(kind, id);
        match fs::metadata(&path) {
            Ok(meta) => Ok(FileStat {
                bytes: meta.len(),
                modified: meta
                    .modified()
                    .map_err(|e| SpoolError::io("stat", &path, e))?,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpoolError::NotFound {
                kind,
                id: id.to_string(),
                path,
            }),
            Err(e) => Err(SpoolError::io("stat", path, e)),
        }
    }

    /// Removes the `kind` file of `id` if there is one (a processed file superseded by a header
    /// file, say), `fsync`ing its directory.
    pub fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> Result<()> {
        let path = self.path(kind, id);
        match self.fs.remove_file(&path) {
            Ok(()) => self.sync_dir(&self.dir(kind)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::io("remove", path, e)),
        }
    }

    /// The ids of all `kind` files, sorted (that is, by reception time for generated ids).
    /// Names that are not `<id>.dcm` are skipped. Used at start-up to find orphans.
    pub fn list(&self, kind: FileKind) -> Result<Vec<InstanceId>> {
        let dir = self.dir(kind);
        let entries = fs::read_dir(&dir).map_err(|e| SpoolError::io("list", &dir, e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name
                .to_str()
                .and_then(|n| n.strip_suffix(EXT))
                .and_then(|n| n.strip_suffix('.'))
            else {
                continue;
            };
            if let Ok(id) = stem.parse::<InstanceId>() {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Bytes available to an unprivileged writer on the spool's file system (`statvfs`
    /// `f_bavail * f_frsize`), for the daemon's disk watermark.
    pub fn free_bytes(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(&self.root)
            .map_err(|e| SpoolError::io("statvfs", &self.root, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Number and total size of instance files of every kind.
    pub fn usage(&self) -> Result<Usage> {
        let mut usage = Usage::default();
        for kind in FileKind::ALL {
            let dir = self.dir(kind);
            let entries = fs::read_dir(&dir).map_err(|e| SpoolError::io("list", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| SpoolError::io("list", &dir, e))?;
                // A file removed concurrently is simply not counted.
                if let Ok(meta) = entry.metadata() {
                    if meta.is_file() {
                        usage.files += 1;
                        usage.bytes += meta.len();
                    }
                }
            }
        }
        Ok(usage)
    }

    /// Checks that the spool's file system answers and that `tmp/` takes a new file (a probe
    /// written and removed): what `/readyz` reports.
    pub fn probe_writable(&self) -> Result<()> {
        self.free_bytes()?;
        let probe = self.tmp.join(".readyz");
        fs::write(&probe, b"ok").map_err(|e| SpoolError::io("write probe", &probe, e))?;
        fs::remove_file(&probe).map_err(|e| SpoolError::io("remove probe", &probe, e))
    }

    fn dir(&self, kind: FileKind) -> PathBuf {
        self.root.join(kind.dir_name())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.fs
            .sync_dir(dir)
            .map_err(|e| SpoolError::io("fsync directory", dir, e))
    }

    /// Best-effort removal of a file this call created; the original error is what matters.
    fn discard(&self, path: &Path) {
        let _ = self.fs.remove_file(path);
    }

    /// Deletes everything in `tmp/`: nothing there was ever acknowledged.
    fn clear_tmp(&self) -> Result<()> {
        let entries = fs::read_dir(&self.tmp).map_err(|e| SpoolError::io("list", &self.tmp, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io("list", &self.tmp, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let res = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            res.map_err(|e| SpoolError::io("remove leftover", &path, e))?;
        }
        Ok(())
    }
}

/// Takes the exclusive advisory lock on `<root>/.lock` (held while the returned file is open),
/// or fails with [`SpoolError::Locked`]: one owner per directory. Also used by backends that
/// keep a local scratch directory.
pub fn lock_dir(root: &Path) -> Result<File> {
    let path = root.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SpoolError::io("open lock file", &path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(SpoolError::Locked { path }),
        Err(e) => Err(SpoolError::io("lock", path, e.into())),
    }
}

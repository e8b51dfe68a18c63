//! The local scratch directory: copies of objects for [`radroute_spool::InstanceStore::local_file`].
//!
//! Layout: `<root>/<kind>/<instance id>.<object id>.dcm`, written through `<root>/tmp/` and
//! renamed, so a copy is complete or absent. Copies are a cache: never `fsync`ed, deleted at
//! open, and named by the database's object id, so a copy of a replaced or re-stored object is
//! never served for the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use radroute_spool::{FileKind, InstanceId, SpoolError};

/// An opened (locked, emptied) scratch directory.
#[derive(Debug)]
pub(crate) struct Scratch {
    root: PathBuf,
    tmp: PathBuf,
    seq: AtomicU64,
    _lock: File,
}

impl Scratch {
    /// Creates `root` and its sub-directories, locks it and deletes every earlier copy.
    pub(crate) fn open(root: &Path) -> Result<Scratch, SpoolError> {
        fs::create_dir_all(root).map_err(|e| io_err("create directory", root, e))?;
        let lock = radroute_spool::spool::lock_dir(root)?;
        let tmp = root.join("tmp");
        for dir in FileKind::ALL
            .iter()
            .map(|k| root.join(k.dir_name()))
            .chain([tmp.clone()])
        {
            if dir.is_dir() {
                fs::remove_dir_all(&dir).map_err(|e| io_err("empty scratch", &dir, e))?;
            }
            fs::create_dir(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        }
        Ok(Scratch {
            root: root.to_path_buf(),
            tmp,
            seq: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// The root directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where the copy of object `object_id` (the `kind` object of `id`) lives.
    pub(crate) fn path(&self, kind: FileKind, id: &InstanceId, object_id: i64) -> PathBuf {
        self.root
            .join(kind.dir_name())
            .join(format!("{id}.{object_id}.dcm"))
    }

    /// The copy, when it exists with the expected size.
    pub(crate) fn get(
        &self,
        kind: FileKind,
        id: &InstanceId,
        object_id: i64,
        bytes: u64,
    ) -> Option<PathBuf> {
        let path = self.path(kind, id, object_id);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() == bytes => Some(path),
            _ => None,
        }
    }

    /// Writes a copy (temporary file, then rename; no `fsync`: it is a cache).
    pub(crate) fn write(
        &self,
        kind: FileKind,
        id: &InstanceId,
        object_id: i64,
        parts: &[&[u8]],
    ) -> Result<PathBuf, SpoolError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{id}.{object_id}.{seq}.tmp"));
        let target = self.path(kind, id, object_id);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| parts.iter().try_for_each(|p| f.write_all(p)))
            .and_then(|()| fs::rename(&tmp, &target));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write scratch copy", &target, e));
        }
        Ok(target)
    }

    /// Deletes the copy of `object_id`, if any.
    pub(crate) fn discard(&self, kind: FileKind, id: &InstanceId, object_id: i64) {
        let _ = fs::remove_file(self.path(kind, id, object_id));
    }

    /// Every copy, with its object id (names that do not parse are included with `None`).
    pub(crate) fn entries(&self) -> Result<Vec<(PathBuf, Option<i64>)>, SpoolError> {
        let mut out = Vec::new();
        for kind in FileKind::ALL {
            let dir = self.root.join(kind.dir_name());
            let list = fs::read_dir(&dir).map_err(|e| io_err("list scratch", &dir, e))?;
            for entry in list {
                let entry = entry.map_err(|e| io_err("list scratch", &dir, e))?;
                let name = entry.file_name();
                let object_id = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".dcm"))
                    .and_then(|n| n.rsplit_once('.'))
                    .and_then(|(_, o)| o.parse().ok());
                out.push((entry.path(), object_id));
            }
        }
        Ok(out)
    }

    /// Bytes free on the scratch file system.
    pub(crate) fn free_bytes(&self) -> Result<u64, SpoolError> {
        let st =
            rustix::fs::statvfs(&self.root).map_err(|e| io_err("statvfs", &self.root, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Writes and removes a probe file: the scratch directory takes new files.
    pub(crate) fn probe(&self) -> Result<(), SpoolError> {
        let probe = self.tmp.join(".readyz");
        fs::write(&probe, b"ok")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|e| io_err("write probe", &probe, e))
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

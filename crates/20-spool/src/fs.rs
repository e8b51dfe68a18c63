//! The file operations the spool's write path depends on, behind a trait.
//!
//! The trait exists for fault injection: tests replace [`RealFs`] with an implementation that
//! fails a write half-way (disk full), fails the rename, or fails the directory `fsync`, and then
//! check that the spool returns a typed error and that nothing appears under a final name.
//! Production code always uses [`RealFs`]. Reading, listing and directory creation go straight to
//! `std::fs`: they have no durability role.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The durability-relevant file operations of the spool.
pub trait SpoolFs: Send + Sync + std::fmt::Debug {
    /// Creates `path` (which must not exist), writes `parts` in order and `fsync`s the file.
    fn write_new(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync`s a directory so that entries created, renamed or removed in it are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` (which must not exist) for a streaming write; the caller writes,
    /// `fsync`s and renames it.
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl SpoolFs for RealFs {
    fn write_new(&self, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

//! Streaming puts: an object written piece by piece while its bytes arrive, made durable and
//! visible only by [`PutStream::commit`].
//!
//! The receive path writes a data set while its P-DATA still arrives, so that the durable write
//! overlaps the transfer instead of following it: the local spool writes into `tmp/` and starts
//! the kernel's writeback every [`WRITEBACK_EVERY`] bytes (`sync_file_range(2)` with
//! `SYNC_FILE_RANGE_WRITE`, which queues the pages for writing without waiting), so that the
//! `fsync` at commit finds little left to do. A backend without a streaming write uses
//! [`BufferedPut`], which gathers the bytes and calls [`InstanceStore::put`] at commit.
//!
//! Dropping a stream without committing it aborts the put: nothing becomes visible and the
//! local spool removes its temporary file (a crash leaves it in `tmp/`, which
//! [`crate::Spool::open`] empties: nothing there was ever acknowledged).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::fs::SpoolFs;
use crate::{FileKind, InstanceId, InstanceStore, Result, SpoolError};

/// Bytes written between two starts of writeback (the local spool's streaming put).
pub const WRITEBACK_EVERY: u64 = 2 << 20;

/// An object being written ([`InstanceStore::begin_put`]); dropped without
/// [`PutStream::commit`], the put is aborted and leaves nothing visible.
pub trait PutStream: Send {
    /// Appends `bytes` to the object. May block (file I/O): call it from a blocking thread.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Appends `parts` in order, as [`PutStream::write`] of each would; a backend that writes
    /// files gathers them into few system calls. May block, as `write`.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        parts.iter().try_for_each(|part| self.write(part))
    }

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Makes the object durable and visible under its id and kind, with the same guarantee as
    /// [`InstanceStore::put`]: `Ok` only once it is on stable storage, on `Err` nothing is
    /// visible. `store` is the store that began the put (the buffered default puts into it; a
    /// backend's own stream ignores it).
    fn commit(self: Box<Self>, store: &dyn InstanceStore) -> Result<()>;
}

/// The default streaming put: gathers the bytes in memory and hands them to
/// [`InstanceStore::put`] at commit (backends without a streaming write, e.g. PostgreSQL).
#[derive(Debug)]
pub struct BufferedPut {
    kind: FileKind,
    id: InstanceId,
    bytes: Vec<u8>,
}

impl BufferedPut {
    /// An empty buffered put of the `kind` object of `id`.
    pub fn new(kind: FileKind, id: &InstanceId) -> BufferedPut {
        BufferedPut {
            kind,
            id: id.clone(),
            bytes: Vec::new(),
        }
    }
}

impl PutStream for BufferedPut {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn commit(self: Box<Self>, store: &dyn InstanceStore) -> Result<()> {
        store.put(self.kind, &self.id, &[&self.bytes])
    }
}

/// The local spool's streaming put: a file in `tmp/`, written as bytes come, with early
/// writeback; at commit `fsync`, rename into place, `fsync` of the directory.
#[derive(Debug)]
pub struct SpoolPut {
    pub(crate) fs: Arc<dyn SpoolFs>,
    /// `None` once committed (nothing left to remove).
    pub(crate) file: Option<File>,
    pub(crate) tmp: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) written: u64,
    /// Offset up to which writeback has been started.
    pub(crate) kicked: u64,
}

impl SpoolPut {
    fn file(&mut self) -> Result<&mut File> {
        self.file.as_mut().ok_or_else(|| {
            SpoolError::io(
                "write",
                self.tmp.clone(),
                std::io::Error::other("put already finished"),
            )
        })
    }

    /// Queues the pages written since the last call for writeback, without waiting for them.
    fn start_writeback(&mut self) -> Result<()> {
        let (from, len) = (self.kicked, self.written - self.kicked);
        let fd = self.file()?.as_raw_fd();
        // SAFETY: `fd` is the open file this stream owns; sync_file_range reads no memory.
        let rc = unsafe {
            libc::sync_file_range(
                fd,
                from as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc != 0 {
            return Err(SpoolError::io(
                "start writeback of",
                self.tmp.clone(),
                std::io::Error::last_os_error(),
            ));
        }
        self.kicked = self.written;
        Ok(())
    }

    fn discard(&mut self) {
        if self.file.take().is_some() {
            let _ = self.fs.remove_file(&self.tmp);
        }
    }
}

impl PutStream for SpoolPut {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_parts(&[bytes])
    }

    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        if let Err(e) = write_all_gathered(self.file()?, parts) {
            return Err(SpoolError::io("write", self.tmp.clone(), e));
        }
        self.written += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        if self.written - self.kicked >= WRITEBACK_EVERY {
            self.start_writeback()?;
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn commit(mut self: Box<Self>, _store: &dyn InstanceStore) -> Result<()> {
        let synced = self.file()?.sync_all();
        if let Err(e) = synced {
            self.discard();
            return Err(SpoolError::io("fsync", self.tmp.clone(), e));
        }
        if let Err(e) = self.fs.rename(&self.tmp, &self.target) {
            self.discard();
            return Err(SpoolError::io("rename into", self.target.clone(), e));
        }
        // Renamed: the temporary name is gone, the final one is removed on failure below.
        self.file = None;
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            // The entry may or may not survive a power loss; the caller answers with a failure,
            // so do not leave an unacknowledged file behind (as `Spool::store_parts`).
            let _ = self.fs.remove_file(&self.target);
            return Err(SpoolError::io("fsync directory", self.dir.clone(), e));
        }
        Ok(())
    }
}

/// Writes every byte of `parts`, in order, with as few `writev` calls as the kernel allows
/// (a received data set arrives as hundreds of PDVs of 16–64 KiB each).
fn write_all_gathered(out: &mut impl Write, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::IoSlice;
    // Linux takes at most IOV_MAX (1024) slices per call.
    const MAX_SLICES: usize = 1024;
    let (mut part, mut offset) = (0, 0);
    loop {
        while part < parts.len() && offset == parts[part].len() {
            (part, offset) = (part + 1, 0);
        }
        if part == parts.len() {
            return Ok(());
        }
        let end = parts.len().min(part + MAX_SLICES);
        let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[part][offset..])
            .chain(parts[part + 1..end].iter().copied())
            .map(IoSlice::new)
            .collect();
        let mut n = match out.write_vectored(&slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Skip what was written: whole parts, then into the next one.
        while part < parts.len() && n >= parts[part].len() - offset {
            n -= parts[part].len() - offset;
            (part, offset) = (part + 1, 0);
        }
        offset += n;
    }
}

impl Drop for SpoolPut {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::write_all_gathered;

    /// Takes at most `max` bytes per call, from the first non-empty slice only (std's default
    /// `write_vectored`): every call is a partial write.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn parts_of(data: &[u8]) -> Vec<&[u8]> {
        // Uneven sizes, empty ones among them, more parts than one writev takes.
        let mut parts = Vec::new();
        let mut rest = data;
        for i in 0.. {
            if rest.is_empty() {
                break;
            }
            let n = (i * 7 % 13).min(rest.len());
            parts.push(&rest[..n]);
            rest = &rest[n..];
        }
        parts
    }

    #[test]
    fn partial_writes_lose_and_repeat_nothing() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 255) as u8).collect();
        let parts = parts_of(&data);
        assert!(parts.len() > 1024 && parts.iter().any(|p| p.is_empty()));
        let mut out = Trickle {
            got: Vec::new(),
            max: 5,
        };
        write_all_gathered(&mut out, &parts).expect("written");
        assert!(out.got == data);
    }

    #[test]
    fn a_file_gets_every_part() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let parts = parts_of(&data);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut file = std::fs::File::create(&path).expect("create");
        write_all_gathered(&mut file, &parts).expect("written");
        write_all_gathered(&mut file, &[&[], &[]]).expect("nothing to write is no error");
        drop(file);
        assert!(std::fs::read(&path).expect("read") == data);
    }
}

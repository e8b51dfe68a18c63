//! The data set of a C-STORE as it goes on the wire: bytes in memory followed by a range of a
//! spooled file, written as P-DATA-TF PDUs.
//!
//! Over plain TCP the file range never enters user space: radroute writes each PDU's 12 header
//! bytes and the kernel copies the value from the page cache to the socket (`sendfile`). For a
//! 10 MB radiograph that saves reading it into a buffer and copying it again into PDUs. TLS
//! needs the bytes in user space to encrypt them: [`DataSet::into_bytes`] reads them.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// A byte range of a spooled file.
#[derive(Debug)]
pub struct FileRange {
    /// The open file.
    pub file: File,
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// A data set to send: `head[head_start..]`, then `tail`.
#[derive(Debug)]
pub struct DataSet {
    /// Bytes in memory (a coerced header, a transcoded data set).
    pub head: Vec<u8>,
    /// Where the data set starts in `head`.
    pub head_start: usize,
    /// The rest, straight from a spooled file.
    pub tail: Option<FileRange>,
}

impl FileRange {
    /// A range of `file`, with the kernel asked to start reading it into the page cache (it is
    /// sent from there, and a spool file written long ago may have left it).
    pub fn new(file: File, offset: u64, len: u64) -> FileRange {
        if let Some(n) = std::num::NonZeroU64::new(len) {
            // Only advice: a file system that ignores it costs nothing.
            let _ = rustix::fs::fadvise(&file, offset, Some(n), rustix::fs::Advice::WillNeed);
        }
        FileRange { file, offset, len }
    }
}

impl DataSet {
    /// The data set held in memory.
    pub fn in_memory(bytes: Vec<u8>, start: usize) -> DataSet {
        DataSet {
            head: bytes,
            head_start: start,
            tail: None,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        (self.head.len() - self.head_start) as u64 + self.tail.as_ref().map_or(0, |t| t.len)
    }

    /// True when it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All of it in memory (reads the file range). Blocking I/O.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        let Some(mut tail) = self.tail else {
            let mut head = self.head;
            head.drain(..self.head_start);
            return Ok(head);
        };
        let mut out = Vec::with_capacity(self.head.len() - self.head_start + tail.len as usize);
        out.extend_from_slice(&self.head[self.head_start..]);
        tail.file.seek(SeekFrom::Start(tail.offset))?;
        let read = (&mut tail.file).take(tail.len).read_to_end(&mut out)?;
        if (read as u64) < tail.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "spooled file shorter than expected",
            ));
        }
        Ok(out)
    }
}

/// PDU header (type, reserved, length) and PDV item header (length, context, control).
const HEADERS: u64 = 12;

/// Writes `data` as P-DATA-TF PDUs of presentation context `pc` whose length field stays within
/// `max_pdu` (the peer's maximum; values of up to `max_pdu - 6` bytes), the last one flagged
/// last. Each PDU must go out within `timeout`.
pub async fn write_pdata(
    stream: &mut TcpStream,
    pc: u8,
    max_pdu: u32,
    data: &DataSet,
    timeout: Duration,
) -> io::Result<()> {
    let max_value = radroute_dimse::pdv_value_capacity(max_pdu) as u64;
    let head = &data.head[data.head_start..];
    let total = data.len();
    let mut sent = 0u64;
    loop {
        let chunk = (total - sent).min(max_value);
        let last = sent + chunk == total;
        let pdu = write_pdu(stream, pc, head, data.tail.as_ref(), sent, chunk, last);
        tokio::time::timeout(timeout, pdu)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "PDU write timed out"))??;
        sent += chunk;
        if last {
            return Ok(());
        }
    }
}

/// One PDU carrying bytes `[from, from + len)` of `head` followed by `tail`.
async fn write_pdu(
    stream: &mut TcpStream,
    pc: u8,
    head: &[u8],
    tail: Option<&FileRange>,
    from: u64,
    len: u64,
    last: bool,
) -> io::Result<()> {
    let mut header = [0u8; HEADERS as usize];
    header[0] = 0x04;
    header[2..6].copy_from_slice(&((len + 6) as u32).to_be_bytes());
    header[6..10].copy_from_slice(&((len + 2) as u32).to_be_bytes());
    header[10] = pc;
    // Message control header: data (bit 0 clear), last fragment (bit 1).
    header[11] = if last { 0x02 } else { 0x00 };
    let end = from + len;
    // MSG_MORE: the 12 header bytes wait for the value instead of leaving as a packet of their
    // own (the socket has TCP_NODELAY).
    send_more(stream, &header, len > 0).await?;
    let mut pos = from;
    let head_len = head.len() as u64;
    if pos < head_len {
        let upto = end.min(head_len);
        stream.write_all(&head[pos as usize..upto as usize]).await?;
        pos = upto;
    }
    if pos < end {
        let tail = tail.ok_or_else(|| io::Error::other("data set shorter than announced"))?;
        send_file(
            stream,
            &tail.file,
            tail.offset + (pos - head_len),
            end - pos,
        )
        .await?;
    }
    Ok(())
}

/// Writes `bytes` whole; with `more`, tells the kernel more data follows at once (MSG_MORE).
async fn send_more(stream: &TcpStream, mut bytes: &[u8], more: bool) -> io::Result<()> {
    let flags = if more {
        rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL
    } else {
        rustix::net::SendFlags::NOSIGNAL
    };
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::net::send(stream.as_fd(), bytes, flags).map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies `len` bytes of `file` from `offset` to the socket in the kernel (`sendfile`).
async fn send_file(
    stream: &TcpStream,
    file: &File,
    mut offset: u64,
    mut len: u64,
) -> io::Result<()> {
    while len > 0 {
        stream.writable().await?;
        let count = len.min(1 << 30) as usize;
        let result = stream.try_io(Interest::WRITABLE, || {
            let mut at = offset;
            rustix::fs::sendfile(stream.as_fd(), file.as_fd(), Some(&mut at), count)
                .map_err(io::Error::from)
        });
        match result {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "spooled file shorter than expected",
                ))
            }
            Ok(n) => {
                offset += n as u64;
                len -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    /// Parses P-DATA-TF PDUs of one PDV each: (context, control, value) per PDU.
    fn parse(mut bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0x04, "not a P-DATA-TF PDU");
            let pdu_len = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
            let item_len = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
            assert_eq!(pdu_len, item_len + 4, "one PDV per PDU");
            out.push((bytes[10], bytes[11], bytes[12..6 + pdu_len].to_vec()));
            bytes = &bytes[6 + pdu_len..];
        }
        out
    }

    async fn send(data: DataSet, max_pdu: u32) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            write_pdata(&mut s, 5, max_pdu, &data, Duration::from_secs(10))
                .await
                .unwrap();
        });
        let (mut r, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        got
    }

    #[tokio::test]
    async fn head_and_file_range_go_out_as_bounded_pdus() {
        let head: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"prefix-to-skip").unwrap();
        file.write_all(&body).unwrap();
        file.write_all(b"suffix-to-skip").unwrap();
        let data = DataSet {
            head: [b"meta".as_slice(), &head].concat(),
            head_start: 4,
            tail: Some(FileRange {
                file,
                offset: 14,
                len: body.len() as u64,
            }),
        };
        let max_pdu = 16_384;
        let pdus = parse(&send(data, max_pdu).await);
        assert!(pdus.len() > 1);
        let mut value = Vec::new();
        for (i, (pc, control, v)) in pdus.iter().enumerate() {
            assert_eq!(*pc, 5);
            let last = i + 1 == pdus.len();
            assert_eq!(*control, if last { 0x02 } else { 0x00 }, "PDU {i}");
            assert!(v.len() + 6 <= max_pdu as usize, "PDU {i} too long");
            value.extend_from_slice(v);
        }
        assert_eq!(value, [head, body].concat());
    }

    /// A peer announcing a maximum PDU length of 0 ("no limit", PS3.8 D.3.3.1) gets PDUs as
    /// large as the rule of `radroute_dimse::pdv_value_capacity` allows, not 2-byte ones.
    #[tokio::test]
    async fn an_unlimited_peer_gets_large_pdus() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 239) as u8).collect();
        let pdus = parse(&send(DataSet::in_memory(body.clone(), 0), 0).await);
        assert_eq!(pdus.len(), 1, "one PDU for 100 kB to an unlimited peer");
        assert_eq!(pdus[0].2, body);
    }

    #[tokio::test]
    async fn empty_and_memory_only_data_sets() {
        let pdus = parse(&send(DataSet::in_memory(Vec::new(), 0), 4096).await);
        assert_eq!(pdus, vec![(5, 0x02, Vec::new())]);
        let pdus = parse(&send(DataSet::in_memory(vec![1, 2, 3, 4], 2), 4096).await);
        assert_eq!(pdus, vec![(5, 0x02, vec![3, 4])]);
    }

    #[test]
    fn into_bytes_reads_the_range() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"xxABCDyy").unwrap();
        let data = DataSet {
            head: b"..hd".to_vec(),
            head_start: 2,
            tail: Some(FileRange {
                file,
                offset: 2,
                len: 4,
            }),
        };
        assert_eq!(data.len(), 6);
        assert_eq!(data.into_bytes().unwrap(), b"hdABCD");
    }
}

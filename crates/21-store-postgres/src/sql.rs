//! The statements of the store, as async functions over a connection or transaction.

use std::time::SystemTime;

use radroute_spool::FileKind;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Error, GenericClient, Transaction};

use crate::Layout;

/// `instance_objects.kind` of a file kind.
pub(crate) fn kind_code(kind: FileKind) -> i16 {
    match kind {
        FileKind::Incoming => 0,
        FileKind::Processed => 1,
        FileKind::Header => 2,
    }
}

/// Metadata of one live object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub object_id: i64,
    pub bytes: u64,
    pub lo: Option<u32>,
    pub created_at: SystemTime,
}

/// The live (not quarantined) `kind` object of `id`.
pub(crate) async fn meta(
    c: &impl GenericClient,
    id: &str,
    kind: FileKind,
) -> Result<Option<Meta>, Error> {
    let row = c
        .query_opt(
            "SELECT object_id, bytes, lo, created_at FROM instance_objects \
             WHERE instance_id = $1 AND kind = $2 AND quarantined_at IS NULL",
            &[&id, &kind_code(kind)],
        )
        .await?;
    Ok(row.map(|r| Meta {
        object_id: r.get(0),
        bytes: r.get::<_, i64>(1).max(0) as u64,
        lo: r.get(2),
        created_at: r.get(3),
    }))
}

/// The bytes of an object, or `None` when it was deleted meanwhile.
pub(crate) async fn fetch(c: &impl GenericClient, m: &Meta) -> Result<Option<Vec<u8>>, Error> {
    if let Some(lo) = m.lo {
        // lo_get fails when the object was unlinked meanwhile: report that as gone.
        return match c.query_one("SELECT lo_get($1)", &[&lo]).await {
            Ok(row) => Ok(Some(row.get(0))),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => {
                Ok(None)
            }
            Err(e) => Err(e),
        };
    }
    let rows = c
        .query(
            "SELECT data FROM instance_chunks WHERE object_id = $1 ORDER BY seq",
            &[&m.object_id],
        )
        .await?;
    if rows.is_empty() {
        // Every object has at least one chunk (an empty one when it has no bytes).
        return Ok(None);
    }
    let mut out = Vec::with_capacity(m.bytes as usize);
    for row in &rows {
        out.extend_from_slice(row.get::<_, &[u8]>(0));
    }
    Ok(Some(out))
}

/// Deletes the live objects of `id` (of `kind`, or all kinds), unlinking their large objects
/// in the same transaction; returns (kind code, object id) of each.
pub(crate) async fn delete_live(
    tx: &Transaction<'_>,
    id: &str,
    kind: Option<FileKind>,
) -> Result<Vec<(i16, i64)>, Error> {
    let rows = tx
        .query(
            "WITH d AS (DELETE FROM instance_objects \
                 WHERE instance_id = $1 AND ($2::int2 IS NULL OR kind = $2) \
                   AND quarantined_at IS NULL \
                 RETURNING kind, object_id, lo) \
             SELECT kind, object_id, CASE WHEN lo IS NOT NULL THEN lo_unlink(lo) END FROM d",
            &[&id, &kind.map(kind_code)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Writes an object's row and bytes in `tx`; returns its object id.
pub(crate) async fn insert(
    tx: &Transaction<'_>,
    id: &str,
    kind: FileKind,
    parts: &[&[u8]],
    layout: Layout,
    chunk: usize,
) -> Result<i64, Error> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let lo: Option<u32> = match layout {
        Layout::Chunks => None,
        Layout::LargeObjects => Some(write_large_object(tx, parts, chunk).await?),
    };
    let object_id: i64 = tx
        .query_one(
            "INSERT INTO instance_objects (instance_id, kind, bytes, layout, lo) \
             VALUES ($1, $2, $3, $4, $5) RETURNING object_id",
            &[&id, &kind_code(kind), &(total as i64), &layout.code(), &lo],
        )
        .await?
        .get(0);
    if layout == Layout::Chunks {
        write_chunks(tx, object_id, parts, chunk).await?;
    }
    Ok(object_id)
}

/// Streams the chunks with one binary COPY (one round trip, no per-row statement).
async fn write_chunks(
    tx: &Transaction<'_>,
    object_id: i64,
    parts: &[&[u8]],
    chunk: usize,
) -> Result<(), Error> {
    let sink = tx
        .copy_in("COPY instance_chunks (object_id, seq, data) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT4, Type::BYTEA]);
    tokio::pin!(writer);
    let mut seq = 0i32;
    let mut chunks = Chunks::new(parts, chunk);
    while let Some(data) = chunks.next_chunk() {
        writer
            .as_mut()
            .write(&[&object_id, &seq, &data.as_ref()])
            .await?;
        seq += 1;
    }
    writer.finish().await?;
    Ok(())
}

/// Creates a large object holding `parts` and returns its oid.
async fn write_large_object(
    tx: &Transaction<'_>,
    parts: &[&[u8]],
    chunk: usize,
) -> Result<u32, Error> {
    let mut chunks = Chunks::new(parts, chunk);
    let first = chunks.next_chunk().unwrap_or_default();
    let oid: u32 = tx
        .query_one("SELECT lo_from_bytea(0, $1)", &[&first.as_ref()])
        .await?
        .get(0);
    let mut offset = first.len() as i64;
    while let Some(data) = chunks.next_chunk() {
        tx.execute(
            "SELECT lo_put($1, $2, $3)",
            &[&oid, &offset, &data.as_ref()],
        )
        .await?;
        offset += data.len() as i64;
    }
    Ok(oid)
}

/// Cuts consecutive parts into chunks of `size` bytes (the last one shorter), borrowing where a
/// chunk lies inside one part and copying only chunks that straddle two. Yields one empty
/// chunk for empty input, so every object has at least one.
pub(crate) struct Chunks<'a> {
    parts: &'a [&'a [u8]],
    part: usize,
    offset: usize,
    size: usize,
    started: bool,
}

impl<'a> Chunks<'a> {
    pub(crate) fn new(parts: &'a [&'a [u8]], size: usize) -> Chunks<'a> {
        Chunks {
            parts,
            part: 0,
            offset: 0,
            size: size.max(1),
            started: false,
        }
    }

    pub(crate) fn next_chunk(&mut self) -> Option<std::borrow::Cow<'a, [u8]>> {
        while self.part < self.parts.len() && self.offset == self.parts[self.part].len() {
            self.part += 1;
            self.offset = 0;
        }
        if self.part == self.parts.len() {
            let first = !self.started;
            self.started = true;
            return first.then_some(std::borrow::Cow::Borrowed(&[][..]));
        }
        self.started = true;
        let cur = self.parts[self.part];
        if cur.len() - self.offset >= self.size {
            let out = &cur[self.offset..self.offset + self.size];
            self.offset += self.size;
            return Some(std::borrow::Cow::Borrowed(out));
        }
        let mut buf = Vec::with_capacity(self.size);
        while buf.len() < self.size && self.part < self.parts.len() {
            let cur = self.parts[self.part];
            let take = (self.size - buf.len()).min(cur.len() - self.offset);
            buf.extend_from_slice(&cur[self.offset..self.offset + take]);
            self.offset += take;
            if self.offset == cur.len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        Some(std::borrow::Cow::Owned(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::Chunks;

    fn cut(parts: &[&[u8]], size: usize) -> Vec<Vec<u8>> {
        let mut c = Chunks::new(parts, size);
        std::iter::from_fn(|| c.next_chunk().map(|x| x.into_owned())).collect()
    }

    #[test]
    fn chunks_cover_parts_exactly() {
        assert_eq!(cut(&[], 4), vec![Vec::<u8>::new()]);
        assert_eq!(cut(&[b"", b""], 4), vec![Vec::<u8>::new()]);
        assert_eq!(cut(&[b"abcd"], 4), vec![b"abcd".to_vec()]);
        assert_eq!(
            cut(&[b"ab", b"", b"cdefg", b"h", b"ij"], 4),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
        assert_eq!(
            cut(&[b"abcdefghij"], 3),
            vec![
                b"abc".to_vec(),
                b"def".to_vec(),
                b"ghi".to_vec(),
                b"j".to_vec()
            ]
        );
    }
}

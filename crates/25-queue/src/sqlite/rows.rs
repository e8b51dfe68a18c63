//! Mapping between rows and the crate's types; the column lists used by every query.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::Row;

use crate::{InstanceRecord, InstanceState, JobState, JobView, UnixMillis};

/// Instance columns, table alias `i`, in the order [`instance`] reads them.
pub(super) const INSTANCE_COLS: &str = "i.id, i.sop_instance_uid, i.sop_class_uid, \
    i.transfer_syntax, i.study_instance_uid, i.calling_ae, i.called_ae, i.peer_addr, \
    i.received_at, i.updated_at, i.state, i.label, i.processing_note, i.bytes";

/// Job view columns, `jobs j JOIN instances i`, in the order [`job_view`] reads them.
pub(super) const JOB_VIEW_COLS: &str = "j.id, j.instance_id, j.destination, j.state, \
    j.attempts, j.next_attempt_at, j.last_error, j.last_status, j.created_at, j.updated_at, \
    i.sop_instance_uid, i.study_instance_uid";

/// Reads a row selected with [`INSTANCE_COLS`].
pub(super) fn instance(r: &Row<'_>) -> rusqlite::Result<InstanceRecord> {
    let bytes: i64 = r.get(13)?;
    Ok(InstanceRecord {
        id: r.get(0)?,
        sop_instance_uid: r.get(1)?,
        sop_class_uid: r.get(2)?,
        transfer_syntax: r.get(3)?,
        study_instance_uid: r.get(4)?,
        calling_ae: r.get(5)?,
        called_ae: r.get(6)?,
        peer_addr: r.get(7)?,
        received_at: r.get(8)?,
        updated_at: r.get(9)?,
        state: r.get(10)?,
        label: r.get(11)?,
        processing_note: r.get(12)?,
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

/// Reads a row selected with [`JOB_VIEW_COLS`].
pub(super) fn job_view(r: &Row<'_>) -> rusqlite::Result<JobView> {
    Ok(JobView {
        id: r.get(0)?,
        instance_id: r.get(1)?,
        destination: r.get(2)?,
        state: r.get(3)?,
        attempts: r.get(4)?,
        next_attempt_at: r.get(5)?,
        last_error: r.get(6)?,
        last_status: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        sop_instance_uid: r.get(10)?,
        study_instance_uid: r.get(11)?,
    })
}

/// `u64` to an SQLite INTEGER, saturating (sizes never approach `i64::MAX`).
pub(super) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `usize` (a `LIMIT`) to an SQLite INTEGER, saturating.
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

macro_rules! text_sql {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}
text_sql!(InstanceState);
text_sql!(JobState);

impl ToSql for UnixMillis {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0))
    }
}

impl FromSql for UnixMillis {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_i64().map(UnixMillis)
    }
}

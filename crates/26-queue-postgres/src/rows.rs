//! Rows to the queue's types; the column lists the queries share.

use radroute_queue::{
    InstanceRecord, InstanceState, JobCounts, JobState, JobView, QueueError, UnixMillis,
};
use tokio_postgres::Row;

use crate::errors;

/// Instance columns, table alias `i`, in the order [`instance`] reads them.
pub(crate) const INSTANCE_COLS: &str = "i.id, i.sop_instance_uid, i.sop_class_uid, \
    i.transfer_syntax, i.study_instance_uid, i.calling_ae, i.called_ae, i.peer_addr, \
    i.received_at, i.updated_at, i.state, i.label, i.processing_note, i.bytes";

/// Job view columns, `jobs j JOIN instances i`, in the order [`job_view`] reads them.
pub(crate) const JOB_VIEW_COLS: &str = "j.id, j.instance_id, j.destination, j.state, \
    j.attempts, j.next_attempt_at, j.last_error, j.last_status, j.created_at, j.updated_at, \
    i.sop_instance_uid, i.study_instance_uid";

/// Reads column `idx`, naming the operation when it does not decode.
pub(crate) fn get<'r, T>(row: &'r Row, idx: usize, op: &'static str) -> Result<T, QueueError>
where
    T: tokio_postgres::types::FromSql<'r>,
{
    row.try_get(idx).map_err(|e| errors::row(op, e))
}

/// A state column.
pub(crate) fn state<S>(row: &Row, idx: usize, op: &'static str) -> Result<S, QueueError>
where
    S: std::str::FromStr<Err = radroute_queue::UnknownState>,
{
    let text: &str = get(row, idx, op)?;
    text.parse().map_err(|e| errors::row(op, e))
}

/// A time column.
pub(crate) fn millis(row: &Row, idx: usize, op: &'static str) -> Result<UnixMillis, QueueError> {
    Ok(UnixMillis(get(row, idx, op)?))
}

/// A row selected with [`INSTANCE_COLS`].
pub(crate) fn instance(r: &Row, op: &'static str) -> Result<InstanceRecord, QueueError> {
    let bytes: i64 = get(r, 13, op)?;
    Ok(InstanceRecord {
        id: get(r, 0, op)?,
        sop_instance_uid: get(r, 1, op)?,
        sop_class_uid: get(r, 2, op)?,
        transfer_syntax: get(r, 3, op)?,
        study_instance_uid: get(r, 4, op)?,
        calling_ae: get(r, 5, op)?,
        called_ae: get(r, 6, op)?,
        peer_addr: get(r, 7, op)?,
        received_at: millis(r, 8, op)?,
        updated_at: millis(r, 9, op)?,
        state: state::<InstanceState>(r, 10, op)?,
        label: get(r, 11, op)?,
        processing_note: get(r, 12, op)?,
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

/// A row selected with [`JOB_VIEW_COLS`].
pub(crate) fn job_view(r: &Row, op: &'static str) -> Result<JobView, QueueError> {
    let attempts: i32 = get(r, 4, op)?;
    let status: Option<i32> = get(r, 7, op)?;
    Ok(JobView {
        id: get(r, 0, op)?,
        instance_id: get(r, 1, op)?,
        destination: get(r, 2, op)?,
        state: state::<JobState>(r, 3, op)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: millis(r, 5, op)?,
        last_error: get(r, 6, op)?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        created_at: millis(r, 8, op)?,
        updated_at: millis(r, 9, op)?,
        sop_instance_uid: get(r, 10, op)?,
        study_instance_uid: get(r, 11, op)?,
    })
}

/// `usize` (a `LIMIT`) to a bigint, saturating.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `u64` to a bigint, saturating.
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds `n` jobs in `state` to `counts`.
pub(crate) fn add(counts: &mut JobCounts, state: JobState, n: u64) {
    match state {
        JobState::Queued => counts.queued += n,
        JobState::InFlight => counts.in_flight += n,
        JobState::Delivered => counts.delivered += n,
        JobState::Dead => counts.dead += n,
    }
}

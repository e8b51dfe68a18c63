//! Operator calls behind `radroute queue` and the admin API: counts, listings, retry, drop.

use rusqlite::{params, Connection, OptionalExtension};

use super::pipeline::{job_state, write_tx};
use super::rows::{self, INSTANCE_COLS, JOB_VIEW_COLS};
use crate::error::Context;
use crate::{
    Counts, InstanceDetail, InstanceRecord, InstanceState, JobFilter, JobId, JobState, JobView,
    QueueError, Result, UnixMillis,
};

/// The error text of a job dropped by an operator.
pub(crate) const DROPPED: &str = "dropped by operator";

pub(super) fn counts(conn: &Connection) -> Result<Counts> {
    const OP: &str = "counts";
    let mut counts = Counts::default();
    let mut stmt = conn
        .prepare_cached("SELECT state, COUNT(*) FROM instances GROUP BY state")
        .ctx(OP)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, InstanceState>(0)?, r.get::<_, i64>(1)?))
        })
        .ctx(OP)?;
    for row in rows {
        let (state, n) = row.ctx(OP)?;
        let n = u64::try_from(n).unwrap_or(0);
        match state {
            InstanceState::Received => counts.instances.received = n,
            InstanceState::Routed => counts.instances.routed = n,
            InstanceState::Done => counts.instances.done = n,
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT destination, state, COUNT(*) FROM jobs GROUP BY destination, state")
        .ctx(OP)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, JobState>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .ctx(OP)?;
    for row in rows {
        let (dest, state, n) = row.ctx(OP)?;
        let n = u64::try_from(n).unwrap_or(0);
        counts.jobs.add(state, n);
        counts
            .per_destination
            .entry(dest)
            .or_default()
            .add(state, n);
    }
    Ok(counts)
}

pub(super) fn list_jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobView>> {
    const OP: &str = "list jobs";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_VIEW_COLS} FROM jobs j JOIN instances i ON i.id = j.instance_id \
             WHERE (?1 IS NULL OR j.state = ?1) AND (?2 IS NULL OR j.destination = ?2) \
             ORDER BY j.id DESC LIMIT ?3"
        ))
        .ctx(OP)?;
    let rows = stmt
        .query_map(
            params![filter.state, filter.destination, rows::limit(filter.limit)],
            rows::job_view,
        )
        .ctx(OP)?;
    rows.collect::<rusqlite::Result<_>>().ctx(OP)
}

pub(super) fn retry_job(conn: &mut Connection, job_id: JobId, now: UnixMillis) -> Result<()> {
    const OP: &str = "retry";
    let tx = write_tx(conn, OP)?;
    let (state, _) = job_state(&tx, job_id, OP)?;
    if !matches!(state, JobState::Dead | JobState::Queued) {
        return Err(QueueError::JobState {
            op: OP,
            job_id,
            state,
        });
    }
    let (instance_id, instance_state): (String, InstanceState) = tx
        .query_row(
            "SELECT i.id, i.state FROM jobs j JOIN instances i ON i.id = j.instance_id \
             WHERE j.id = ?1",
            [job_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx(OP)?;
    if instance_state == InstanceState::Done {
        return Err(QueueError::FilesPurged {
            job_id,
            instance_id,
        });
    }
    tx.execute(
        "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = ?2, updated_at = ?2 \
         WHERE id = ?1",
        params![job_id, now],
    )
    .ctx(OP)?;
    tx.commit().ctx(OP)
}

pub(super) fn retry_dead(
    conn: &mut Connection,
    destination: Option<&str>,
    now: UnixMillis,
) -> Result<usize> {
    const OP: &str = "retry dead";
    let tx = write_tx(conn, OP)?;
    let n = tx
        .execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = ?2, \
             updated_at = ?2 WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1) \
             AND instance_id IN (SELECT id FROM instances WHERE state <> 'done')",
            params![destination, now],
        )
        .ctx(OP)?;
    tx.commit().ctx(OP)?;
    Ok(n)
}

pub(super) fn drop_job(conn: &mut Connection, job_id: JobId, now: UnixMillis) -> Result<()> {
    const OP: &str = "drop";
    let tx = write_tx(conn, OP)?;
    let (state, _) = job_state(&tx, job_id, OP)?;
    if state == JobState::Delivered {
        return Err(QueueError::JobState {
            op: OP,
            job_id,
            state,
        });
    }
    tx.execute(
        "UPDATE jobs SET state = 'dead', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![job_id, DROPPED, now],
    )
    .ctx(OP)?;
    tx.commit().ctx(OP)
}

pub(super) fn instance(conn: &Connection, id: &str) -> Result<Option<InstanceDetail>> {
    const OP: &str = "instance";
    let record = conn
        .query_row(
            &format!("SELECT {INSTANCE_COLS} FROM instances i WHERE i.id = ?1"),
            [id],
            rows::instance,
        )
        .optional()
        .ctx(OP)?;
    record.map(|r| detail(conn, r, OP)).transpose()
}

pub(super) fn study(conn: &Connection, study_instance_uid: &str) -> Result<Vec<InstanceDetail>> {
    const OP: &str = "study";
    let records: Vec<InstanceRecord> = {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {INSTANCE_COLS} FROM instances i WHERE i.study_instance_uid = ?1 \
                 ORDER BY i.received_at, i.id"
            ))
            .ctx(OP)?;
        let rows = stmt
            .query_map([study_instance_uid], rows::instance)
            .ctx(OP)?;
        rows.collect::<rusqlite::Result<_>>().ctx(OP)?
    };
    records.into_iter().map(|r| detail(conn, r, OP)).collect()
}

fn detail(conn: &Connection, instance: InstanceRecord, op: &'static str) -> Result<InstanceDetail> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_VIEW_COLS} FROM jobs j JOIN instances i ON i.id = j.instance_id \
             WHERE j.instance_id = ?1 ORDER BY j.destination"
        ))
        .ctx(op)?;
    let rows = stmt.query_map([&instance.id], rows::job_view).ctx(op)?;
    let jobs = rows.collect::<rusqlite::Result<_>>().ctx(op)?;
    Ok(InstanceDetail { instance, jobs })
}

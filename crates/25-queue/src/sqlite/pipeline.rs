//! The daemon's calls: record, route, lease, complete, recover, purge.
//!
//! Every mutation runs in a `BEGIN IMMEDIATE` transaction (write lock taken before the first
//! read), so read-check-update sequences cannot interleave with another connection. The hot
//! writes (`add_instance`, `route_instance`, `lease`, `complete`) take a `&Connection` that is
//! already inside such a transaction: the group commit's ([`super::group`]), shared with the
//! writes of other threads.

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};

use super::admin::DROPPED;
use super::rows::{self, INSTANCE_COLS};
use crate::error::Context;
use crate::{
    InstanceRecord, InstanceState, Job, JobId, JobState, NewInstance, Outcome, QueueError,
    RecoveryReport, Result, RetryPolicy, UnixMillis,
};

pub(super) fn write_tx<'c>(conn: &'c mut Connection, op: &'static str) -> Result<Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(op)
}

pub(super) fn instance_state(tx: &Connection, id: &str, op: &'static str) -> Result<InstanceState> {
    tx.query_row("SELECT state FROM instances WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
    .ctx(op)?
    .ok_or_else(|| QueueError::UnknownInstance { id: id.to_owned() })
}

pub(super) fn job_state(
    tx: &Connection,
    job_id: JobId,
    op: &'static str,
) -> Result<(JobState, u32)> {
    tx.query_row(
        "SELECT state, attempts FROM jobs WHERE id = ?1",
        [job_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .ctx(op)?
    .ok_or(QueueError::UnknownJob { job_id })
}

/// Inside the caller's write transaction.
pub(super) fn add_instance(conn: &Connection, i: &NewInstance) -> Result<()> {
    let res = conn.execute(
        "INSERT INTO instances (id, sop_instance_uid, sop_class_uid, transfer_syntax, \
         study_instance_uid, calling_ae, called_ae, peer_addr, received_at, updated_at, state, \
         bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
        params![
            i.id,
            i.sop_instance_uid,
            i.sop_class_uid,
            i.transfer_syntax,
            i.study_instance_uid,
            i.calling_ae,
            i.called_ae,
            i.peer_addr,
            i.received_at,
            InstanceState::Received,
            rows::int(i.bytes),
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            Err(QueueError::DuplicateInstance { id: i.id.clone() })
        }
        Err(source) => Err(QueueError::Database {
            op: "add instance",
            source,
        }),
    }
}

pub(super) fn pending_processing(conn: &Connection, limit: usize) -> Result<Vec<InstanceRecord>> {
    const OP: &str = "list pending instances";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLS} FROM instances i WHERE i.state = 'received' \
             ORDER BY i.received_at, i.id LIMIT ?1"
        ))
        .ctx(OP)?;
    let rows = stmt
        .query_map([rows::limit(limit)], rows::instance)
        .ctx(OP)?;
    rows.collect::<rusqlite::Result<_>>().ctx(OP)
}

/// Inside the caller's write transaction.
pub(super) fn route_instance(
    tx: &Connection,
    id: &str,
    label: Option<&str>,
    note: Option<&str>,
    destinations: &[String],
    priority: i8,
    now: UnixMillis,
) -> Result<()> {
    const OP: &str = "route instance";
    let state = instance_state(tx, id, OP)?;
    if state != InstanceState::Received {
        return Err(QueueError::InstanceState {
            op: "route",
            id: id.to_owned(),
            state,
        });
    }
    // With no destination it is still `routed` (with no job): the purger removes its files
    // after the retention and marks it done, as for a delivered instance.
    let new_state = InstanceState::Routed;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO jobs (instance_id, destination, state, attempts, \
                 next_attempt_at, created_at, updated_at, priority) \
                 VALUES (?1, ?2, 'queued', 0, ?3, ?3, ?3, ?4)",
            )
            .ctx(OP)?;
        for dest in destinations {
            insert.execute(params![id, dest, now, priority]).ctx(OP)?;
        }
    }
    tx.execute(
        "UPDATE instances SET state = ?2, label = ?3, processing_note = ?4, updated_at = ?5 \
         WHERE id = ?1",
        params![id, new_state, label, note, now],
    )
    .ctx(OP)?;
    Ok(())
}

/// Inside the caller's write transaction.
pub(super) fn lease(
    tx: &Connection,
    destination: &str,
    max: usize,
    now: UnixMillis,
) -> Result<Vec<Job>> {
    const OP: &str = "lease";
    if max == 0 {
        return Ok(Vec::new());
    }
    let jobs: Vec<Job> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT j.id, j.instance_id, j.destination, j.attempts, i.sop_instance_uid, \
                 i.sop_class_uid, i.transfer_syntax, i.study_instance_uid, j.priority \
                 FROM jobs j JOIN instances i ON i.id = j.instance_id \
                 WHERE j.destination = ?1 AND j.state = 'queued' AND j.next_attempt_at <= ?2 \
                 ORDER BY j.priority DESC, j.created_at, j.id LIMIT ?3",
            )
            .ctx(OP)?;
        let rows = stmt
            .query_map(params![destination, now, rows::limit(max)], |r| {
                Ok(Job {
                    id: r.get(0)?,
                    instance_id: r.get(1)?,
                    destination: r.get(2)?,
                    attempts: r.get(3)?,
                    sop_instance_uid: r.get(4)?,
                    sop_class_uid: r.get(5)?,
                    transfer_syntax: r.get(6)?,
                    priority: r.get(8)?,
                    study_instance_uid: r.get(7)?,
                })
            })
            .ctx(OP)?;
        rows.collect::<rusqlite::Result<_>>().ctx(OP)?
    };
    {
        let mut update = tx
            .prepare_cached("UPDATE jobs SET state = 'in_flight', updated_at = ?2 WHERE id = ?1")
            .ctx(OP)?;
        for job in &jobs {
            update.execute(params![job.id, now]).ctx(OP)?;
        }
    }
    Ok(jobs)
}

pub(super) fn next_due(conn: &Connection, destination: &str) -> Result<Option<UnixMillis>> {
    conn.query_row(
        "SELECT MIN(next_attempt_at) FROM jobs WHERE destination = ?1 AND state = 'queued'",
        [destination],
        |r| r.get(0),
    )
    .ctx("next due")
}

/// Inside the caller's write transaction.
pub(super) fn complete(
    tx: &Connection,
    policy: &RetryPolicy,
    job_id: JobId,
    outcome: &Outcome,
    now: UnixMillis,
) -> Result<JobState> {
    const OP: &str = "complete";
    let (state, attempts) = job_state(tx, job_id, OP)?;
    if state != JobState::InFlight {
        return Err(QueueError::JobState {
            op: OP,
            job_id,
            state,
        });
    }
    let attempts = attempts.saturating_add(1);
    let (new_state, next, error, status) = match outcome {
        Outcome::Delivered { status } => (JobState::Delivered, now, None, Some(*status)),
        Outcome::Retry { error, status } if !policy.exhausted(attempts) => (
            JobState::Queued,
            now.saturating_add(policy.backoff(attempts)),
            Some(error.as_str()),
            *status,
        ),
        Outcome::Retry { error, status } | Outcome::Dead { error, status } => {
            (JobState::Dead, now, Some(error.as_str()), *status)
        }
    };
    tx.execute(
        "UPDATE jobs SET state = ?2, attempts = ?3, next_attempt_at = ?4, \
         last_error = COALESCE(?5, last_error), last_status = ?6, updated_at = ?7 WHERE id = ?1",
        params![job_id, new_state, attempts, next, error, status, now],
    )
    .ctx(OP)?;
    Ok(new_state)
}

pub(super) fn recover(conn: &mut Connection, now: UnixMillis) -> Result<RecoveryReport> {
    const OP: &str = "recover";
    let tx = write_tx(conn, OP)?;
    let requeued = tx
        .execute(
            "UPDATE jobs SET state = 'queued', next_attempt_at = ?1, updated_at = ?1 \
             WHERE state = 'in_flight'",
            [now],
        )
        .ctx(OP)?;
    let received: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM instances WHERE state = 'received'",
            [],
            |r| r.get(0),
        )
        .ctx(OP)?;
    tx.commit().ctx(OP)?;
    Ok(RecoveryReport {
        requeued_jobs: requeued as u64,
        received_instances: u64::try_from(received).unwrap_or(0),
    })
}

pub(super) fn release_stale(
    conn: &mut Connection,
    leased_before: UnixMillis,
    now: UnixMillis,
) -> Result<u64> {
    const OP: &str = "release stale leases";
    let tx = write_tx(conn, OP)?;
    // `updated_at` of an in-flight job is its lease time (`lease` sets it).
    let n = tx
        .execute(
            "UPDATE jobs SET state = 'queued', next_attempt_at = ?2, updated_at = ?2 \
             WHERE state = 'in_flight' AND updated_at < ?1",
            params![leased_before, now],
        )
        .ctx(OP)?;
    tx.commit().ctx(OP)?;
    Ok(n as u64)
}

pub(super) fn purgeable(
    conn: &Connection,
    finished_before: UnixMillis,
    dead_before: UnixMillis,
    limit: usize,
) -> Result<Vec<String>> {
    const OP: &str = "list purgeable";
    // Delivered and operator-dropped jobs count against `finished_before`, other dead letters
    // against `dead_before`; an instance without jobs (routed nowhere) against its routing time.
    let mut stmt = conn
        .prepare_cached(
            "SELECT i.id FROM instances i LEFT JOIN jobs j ON j.instance_id = i.id \
             WHERE i.state = 'routed' GROUP BY i.id \
             HAVING COALESCE(SUM(j.state IN ('queued', 'in_flight')), 0) = 0 \
             AND (COUNT(j.id) > 0 OR i.updated_at <= ?1) \
             AND COALESCE(MAX(CASE WHEN j.state = 'delivered' \
                 OR (j.state = 'dead' AND j.last_error = ?3) THEN j.updated_at END), 0) <= ?1 \
             AND COALESCE(MAX(CASE WHEN j.state = 'dead' AND j.last_error IS NOT ?3 \
                 THEN j.updated_at END), 0) <= ?2 \
             ORDER BY i.received_at, i.id LIMIT ?4",
        )
        .ctx(OP)?;
    let rows = stmt
        .query_map(
            params![finished_before, dead_before, DROPPED, rows::limit(limit)],
            |r| r.get(0),
        )
        .ctx(OP)?;
    rows.collect::<rusqlite::Result<_>>().ctx(OP)
}

pub(super) fn mark_done(conn: &mut Connection, id: &str, now: UnixMillis) -> Result<()> {
    const OP: &str = "mark done";
    let tx = write_tx(conn, OP)?;
    match instance_state(&tx, id, OP)? {
        InstanceState::Done => return Ok(()),
        InstanceState::Routed => {}
        state @ InstanceState::Received => {
            return Err(QueueError::InstanceState {
                op: OP,
                id: id.to_owned(),
                state,
            })
        }
    }
    let active: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE instance_id = ?1 \
             AND state IN ('queued', 'in_flight')",
            [id],
            |r| r.get(0),
        )
        .ctx(OP)?;
    if active > 0 {
        return Err(QueueError::InstanceState {
            op: "mark done (jobs still to send) of",
            id: id.to_owned(),
            state: InstanceState::Routed,
        });
    }
    tx.execute(
        "UPDATE instances SET state = 'done', updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )
    .ctx(OP)?;
    tx.commit().ctx(OP)
}

pub(super) fn open_instances(conn: &Connection) -> Result<Vec<(String, InstanceState)>> {
    const OP: &str = "list open instances";
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, state FROM instances WHERE state <> 'done' ORDER BY received_at, id",
        )
        .ctx(OP)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ctx(OP)?;
    rows.collect::<rusqlite::Result<_>>().ctx(OP)
}

pub(super) fn fail_jobs(
    conn: &mut Connection,
    id: &str,
    error: &str,
    now: UnixMillis,
) -> Result<usize> {
    const OP: &str = "fail jobs";
    let tx = write_tx(conn, OP)?;
    let n = tx
        .execute(
            "UPDATE jobs SET state = 'dead', last_error = ?2, updated_at = ?3 \
             WHERE instance_id = ?1 AND state IN ('queued', 'in_flight')",
            params![id, error, now],
        )
        .ctx(OP)?;
    tx.commit().ctx(OP)?;
    Ok(n)
}

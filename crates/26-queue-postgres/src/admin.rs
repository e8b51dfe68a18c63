//! Operator calls on PostgreSQL: counts, listings, retry, drop, lookups, and the cluster view
//! of leases per node.

use std::collections::BTreeMap;

use deadpool_postgres::Client;
use radroute_queue::{
    Counts, InstanceDetail, InstanceRecord, InstanceState, JobFilter, JobId, JobState, JobView,
    QueueError, Result, UnixMillis,
};

use crate::errors;
use crate::rows::{self, INSTANCE_COLS, JOB_VIEW_COLS};

/// The error text of a job dropped by an operator (the same as the SQLite backend's).
pub(crate) const DROPPED: &str = "dropped by operator";

pub(crate) async fn counts(c: &Client) -> Result<Counts> {
    const OP: &str = "counts";
    let mut counts = Counts::default();
    let found = c
        .query("SELECT state, COUNT(*) FROM instances GROUP BY state", &[])
        .await
        .map_err(|e| errors::db(OP, e))?;
    for r in &found {
        let n = u64::try_from(rows::get::<i64>(r, 1, OP)?).unwrap_or(0);
        match rows::state::<InstanceState>(r, 0, OP)? {
            InstanceState::Received => counts.instances.received = n,
            InstanceState::Routed => counts.instances.routed = n,
            InstanceState::Done => counts.instances.done = n,
        }
    }
    let found = c
        .query(
            "SELECT destination, state, COUNT(*) FROM jobs GROUP BY destination, state",
            &[],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    for r in &found {
        let dest: String = rows::get(r, 0, OP)?;
        let state: JobState = rows::state(r, 1, OP)?;
        let n = u64::try_from(rows::get::<i64>(r, 2, OP)?).unwrap_or(0);
        rows::add(&mut counts.jobs, state, n);
        rows::add(counts.per_destination.entry(dest).or_default(), state, n);
    }
    Ok(counts)
}

/// In-flight jobs per lease owner (node id): `radroute cluster status`.
pub(crate) async fn leases_by_node(c: &Client) -> Result<BTreeMap<String, u64>> {
    const OP: &str = "leases by node";
    let found = c
        .query(
            "SELECT COALESCE(lease_owner, ''), COUNT(*) FROM jobs WHERE state = 'in_flight' \
             GROUP BY 1",
            &[],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    found
        .iter()
        .map(|r| {
            let n = u64::try_from(rows::get::<i64>(r, 1, OP)?).unwrap_or(0);
            Ok((rows::get(r, 0, OP)?, n))
        })
        .collect()
}

pub(crate) async fn list_jobs(c: &Client, filter: &JobFilter) -> Result<Vec<JobView>> {
    const OP: &str = "list jobs";
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {JOB_VIEW_COLS} FROM jobs j JOIN instances i ON i.id = j.instance_id \
             WHERE ($1::text IS NULL OR j.state = $1) AND ($2::text IS NULL OR j.destination = $2) \
             ORDER BY j.id DESC LIMIT $3"
        ))
        .await
        .map_err(|e| errors::db(OP, e))?;
    let state = filter.state.map(JobState::as_str);
    let found = c
        .query(
            &stmt,
            &[&state, &filter.destination, &rows::limit(filter.limit)],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    found.iter().map(|r| rows::job_view(r, OP)).collect()
}

pub(crate) async fn retry_job(c: &mut Client, job_id: JobId, now: UnixMillis) -> Result<()> {
    const OP: &str = "retry";
    let tx = c.transaction().await.map_err(|e| errors::db(OP, e))?;
    // Locks the job and its instance: a purge (mark_done) cannot slip in between.
    let row = tx
        .query_opt(
            "SELECT j.state, i.id, i.state FROM jobs j JOIN instances i ON i.id = j.instance_id \
             WHERE j.id = $1 FOR UPDATE",
            &[&job_id],
        )
        .await
        .map_err(|e| errors::db(OP, e))?
        .ok_or(QueueError::UnknownJob { job_id })?;
    let state: JobState = rows::state(&row, 0, OP)?;
    if !matches!(state, JobState::Dead | JobState::Queued) {
        return Err(QueueError::JobState {
            op: OP,
            job_id,
            state,
        });
    }
    if rows::state::<InstanceState>(&row, 2, OP)? == InstanceState::Done {
        return Err(QueueError::FilesPurged {
            job_id,
            instance_id: rows::get(&row, 1, OP)?,
        });
    }
    tx.execute(
        "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = $2, updated_at = $2 \
         WHERE id = $1",
        &[&job_id, &now.0],
    )
    .await
    .map_err(|e| errors::db(OP, e))?;
    tx.commit().await.map_err(|e| errors::db(OP, e))
}

pub(crate) async fn retry_dead(
    c: &Client,
    destination: Option<&str>,
    now: UnixMillis,
) -> Result<usize> {
    const OP: &str = "retry dead";
    // FOR SHARE on the instances: a concurrent mark_done (FOR UPDATE) either waits for this
    // retry and then sees a queued job, or commits first and this retry skips its instance.
    let n = c
        .execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = $2, \
             updated_at = $2 WHERE state = 'dead' AND ($1::text IS NULL OR destination = $1) \
             AND instance_id IN (SELECT id FROM instances WHERE state <> 'done' FOR SHARE)",
            &[&destination, &now.0],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub(crate) async fn drop_job(c: &mut Client, job_id: JobId, now: UnixMillis) -> Result<()> {
    const OP: &str = "drop";
    let tx = c.transaction().await.map_err(|e| errors::db(OP, e))?;
    let row = tx
        .query_opt(
            "SELECT state FROM jobs WHERE id = $1 FOR UPDATE",
            &[&job_id],
        )
        .await
        .map_err(|e| errors::db(OP, e))?
        .ok_or(QueueError::UnknownJob { job_id })?;
    let state: JobState = rows::state(&row, 0, OP)?;
    if state == JobState::Delivered {
        return Err(QueueError::JobState {
            op: OP,
            job_id,
            state,
        });
    }
    tx.execute(
        "UPDATE jobs SET state = 'dead', last_error = $2, updated_at = $3 WHERE id = $1",
        &[&job_id, &DROPPED, &now.0],
    )
    .await
    .map_err(|e| errors::db(OP, e))?;
    tx.commit().await.map_err(|e| errors::db(OP, e))
}

pub(crate) async fn instance(c: &Client, id: &str) -> Result<Option<InstanceDetail>> {
    const OP: &str = "instance";
    let row = c
        .query_opt(
            &format!("SELECT {INSTANCE_COLS} FROM instances i WHERE i.id = $1"),
            &[&id],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    match row {
        Some(r) => Ok(Some(detail(c, rows::instance(&r, OP)?, OP).await?)),
        None => Ok(None),
    }
}

pub(crate) async fn study(c: &Client, study_instance_uid: &str) -> Result<Vec<InstanceDetail>> {
    const OP: &str = "study";
    let found = c
        .query(
            &format!(
                "SELECT {INSTANCE_COLS} FROM instances i WHERE i.study_instance_uid = $1 \
                 ORDER BY i.received_at, i.id COLLATE \"C\""
            ),
            &[&study_instance_uid],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let records: Vec<InstanceRecord> = found
        .iter()
        .map(|r| rows::instance(r, OP))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(detail(c, r, OP).await?);
    }
    Ok(out)
}

async fn detail(c: &Client, instance: InstanceRecord, op: &'static str) -> Result<InstanceDetail> {
    let found = c
        .query(
            &format!(
                "SELECT {JOB_VIEW_COLS} FROM jobs j JOIN instances i ON i.id = j.instance_id \
                 WHERE j.instance_id = $1 ORDER BY j.destination COLLATE \"C\""
            ),
            &[&instance.id],
        )
        .await
        .map_err(|e| errors::db(op, e))?;
    let jobs = found
        .iter()
        .map(|r| rows::job_view(r, op))
        .collect::<Result<_>>()?;
    Ok(InstanceDetail { instance, jobs })
}

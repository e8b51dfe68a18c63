//! The daemon's calls on PostgreSQL: record, route, lease, complete, recover, release, purge.
//!
//! Each call is one statement where the state machine allows it (route, lease, release,
//! recover), so it is atomic without an explicit transaction and costs one round trip; the
//! others are short transactions that lock the rows they check (`FOR UPDATE`), so a
//! read-check-update cannot interleave with another node.

use deadpool_postgres::{Client, GenericClient};
use radroute_queue::{
    InstanceRecord, InstanceState, Job, JobId, JobState, NewInstance, Outcome, QueueError,
    RecoveryReport, Result, RetryPolicy, UnixMillis,
};

use crate::admin::DROPPED;
use crate::errors;
use crate::rows::{self, INSTANCE_COLS};

/// Who is calling and the lease rules: the node's identity and its timings.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// This node's id (lease owner, `received_by`).
    pub node: String,
    /// Retry policy.
    pub policy: RetryPolicy,
    /// Lease duration (ms): expiry = lease time + this.
    pub lease_ttl_ms: i64,
    /// A node whose heartbeat is older than this (ms) is dead.
    pub takeover_after_ms: i64,
}

/// Records a received instance, `received_by` = `node`. Takes any tokio-postgres client or
/// transaction, so the storage backend can run it inside its own transaction and the bytes and
/// the row commit together (cluster mode's store step).
pub async fn insert_instance(
    client: &impl tokio_postgres::GenericClient,
    row: &NewInstance,
    node: &str,
) -> Result<()> {
    const OP: &str = "add instance";
    let stmt = client
        .prepare(
            "INSERT INTO instances (id, sop_instance_uid, sop_class_uid, transfer_syntax, \
             study_instance_uid, calling_ae, called_ae, peer_addr, received_at, updated_at, \
             state, bytes, received_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 'received', $10, $11)",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let res = client
        .execute(
            &stmt,
            &[
                &row.id,
                &row.sop_instance_uid,
                &row.sop_class_uid,
                &row.transfer_syntax,
                &row.study_instance_uid,
                &row.calling_ae,
                &row.called_ae,
                &row.peer_addr,
                &row.received_at.0,
                &rows::int(row.bytes),
                &node,
            ],
        )
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if errors::is_unique_violation(&e) => {
            Err(QueueError::DuplicateInstance { id: row.id.clone() })
        }
        Err(e) => Err(errors::db(OP, e)),
    }
}

/// Instances awaiting processing that this node should process: received by it, or by a node
/// that is dead (its heartbeat older than the takeover time, or gone).
pub(crate) async fn pending_processing(
    c: &Client,
    ctx: &Ctx,
    limit: usize,
    now: UnixMillis,
) -> Result<Vec<InstanceRecord>> {
    const OP: &str = "list pending instances";
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLS} FROM instances i WHERE i.state = 'received' \
             AND (i.received_by = $1 OR NOT EXISTS (SELECT 1 FROM nodes n \
                  WHERE n.node_id = i.received_by AND n.state <> 'left' \
                  AND n.heartbeat_at >= $2)) \
             ORDER BY i.received_at, i.id COLLATE \"C\" LIMIT $3"
        ))
        .await
        .map_err(|e| errors::db(OP, e))?;
    let dead_before = now.0 - ctx.takeover_after_ms;
    let found = c
        .query(&stmt, &[&ctx.node, &dead_before, &rows::limit(limit)])
        .await
        .map_err(|e| errors::db(OP, e))?;
    found.iter().map(|r| rows::instance(r, OP)).collect()
}

/// Routes a `received` instance in one statement: locks its row, inserts one job per distinct
/// destination and marks it `routed`; returns the state it had (routing happened only if it
/// was `received`).
pub(crate) async fn route_instance(
    c: &Client,
    id: &str,
    label: Option<&str>,
    note: Option<&str>,
    destinations: &[String],
    priority: i8,
    now: UnixMillis,
) -> Result<()> {
    const OP: &str = "route instance";
    let stmt = c
        .prepare_cached(
            "WITH cur AS (SELECT id, state FROM instances WHERE id = $1 FOR UPDATE), \
             ins AS (INSERT INTO jobs (instance_id, destination, state, attempts, \
                     next_attempt_at, created_at, updated_at, priority) \
                     SELECT cur.id, d.dest, 'queued', 0, $5, $5, $5, $6 \
                     FROM cur, (SELECT DISTINCT unnest($4::text[]) AS dest) d \
                     WHERE cur.state = 'received' \
                     ON CONFLICT (instance_id, destination) DO NOTHING), \
             upd AS (UPDATE instances i SET state = 'routed', label = $2, \
                     processing_note = $3, updated_at = $5 \
                     FROM cur WHERE i.id = cur.id AND cur.state = 'received') \
             SELECT state FROM cur",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let priority = i16::from(priority);
    let row = c
        .query_opt(
            &stmt,
            &[&id, &label, &note, &destinations, &now.0, &priority],
        )
        .await
        .map_err(|e| errors::db(OP, e))?
        .ok_or_else(|| QueueError::UnknownInstance { id: id.to_owned() })?;
    match rows::state::<InstanceState>(&row, 0, OP)? {
        InstanceState::Received => Ok(()),
        state => Err(QueueError::InstanceState {
            op: "route",
            id: id.to_owned(),
            state,
        }),
    }
}

/// Leases up to `max` due jobs of `destination` for this node, in one statement: the due rows
/// are picked `FOR UPDATE SKIP LOCKED` (rows another node is leasing right now are skipped,
/// not waited for) and set `in_flight` with this node as owner and an expiry.
pub(crate) async fn lease(
    c: &Client,
    ctx: &Ctx,
    destination: &str,
    max: usize,
    now: UnixMillis,
    token: i64,
) -> Result<Vec<Job>> {
    const OP: &str = "lease";
    if max == 0 {
        return Ok(Vec::new());
    }
    let stmt = c
        .prepare_cached(
            "WITH picked AS (SELECT id FROM jobs \
                 WHERE destination = $1 AND state = 'queued' AND next_attempt_at <= $2 \
                 ORDER BY priority DESC, created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs j SET state = 'in_flight', updated_at = $2, lease_owner = $4, \
                 leased_at = $2, lease_expires_at = $5, lease_token = $6 \
             FROM picked, instances i WHERE j.id = picked.id AND i.id = j.instance_id \
             RETURNING j.id, j.instance_id, j.destination, j.attempts, i.sop_instance_uid, \
                 i.sop_class_uid, i.transfer_syntax, i.study_instance_uid, j.priority, \
                 j.created_at",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let expires = now.0.saturating_add(ctx.lease_ttl_ms);
    let found = c
        .query(
            &stmt,
            &[
                &destination,
                &now.0,
                &rows::limit(max),
                &ctx.node,
                &expires,
                &token,
            ],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let mut jobs = Vec::with_capacity(found.len());
    for r in &found {
        let attempts: i32 = rows::get(r, 3, OP)?;
        let priority: i16 = rows::get(r, 8, OP)?;
        let created: i64 = rows::get(r, 9, OP)?;
        let job = Job {
            id: rows::get(r, 0, OP)?,
            instance_id: rows::get(r, 1, OP)?,
            destination: rows::get(r, 2, OP)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            sop_instance_uid: rows::get(r, 4, OP)?,
            sop_class_uid: rows::get(r, 5, OP)?,
            transfer_syntax: rows::get(r, 6, OP)?,
            study_instance_uid: rows::get(r, 7, OP)?,
            priority: i8::try_from(priority).unwrap_or(0),
        };
        jobs.push((created, job));
    }
    // RETURNING has no order: restore the lease order.
    jobs.sort_by(|(ca, a), (cb, b)| {
        b.priority
            .cmp(&a.priority)
            .then(ca.cmp(cb))
            .then(a.id.cmp(&b.id))
    });
    Ok(jobs.into_iter().map(|(_, j)| j).collect())
}

/// When the earliest queued job of `destination` is due.
pub(crate) async fn next_due(c: &Client, destination: &str) -> Result<Option<UnixMillis>> {
    const OP: &str = "next due";
    let stmt = c
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM jobs WHERE destination = $1 AND state = 'queued'",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let row = c
        .query_one(&stmt, &[&destination])
        .await
        .map_err(|e| errors::db(OP, e))?;
    Ok(rows::get::<Option<i64>>(&row, 0, OP)?.map(UnixMillis))
}

/// Records an attempt's outcome on a job this node holds. Compare-and-set: the update applies
/// only if the job is still in flight, still ours and unchanged since we read it; a lease
/// taken over by another node (or released by the watchdog) is refused as `JobState`.
pub(crate) async fn complete(
    c: &Client,
    ctx: &Ctx,
    job_id: JobId,
    outcome: &Outcome,
    now: UnixMillis,
) -> Result<JobState> {
    const OP: &str = "complete";
    let read = c
        .prepare_cached("SELECT state, attempts, lease_owner FROM jobs WHERE id = $1")
        .await
        .map_err(|e| errors::db(OP, e))?;
    let write = c
        .prepare_cached(
            "UPDATE jobs SET state = $2, attempts = $3, next_attempt_at = $4, \
             last_error = COALESCE($5, last_error), last_status = $6, updated_at = $7 \
             WHERE id = $1 AND state = 'in_flight' AND lease_owner = $8 AND attempts = $9",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    // Two tries: a concurrent change between read and write is re-read and reported.
    for _ in 0..2 {
        let row = c
            .query_opt(&read, &[&job_id])
            .await
            .map_err(|e| errors::db(OP, e))?
            .ok_or(QueueError::UnknownJob { job_id })?;
        let state: JobState = rows::state(&row, 0, OP)?;
        let attempts: i32 = rows::get(&row, 1, OP)?;
        let owner: Option<String> = rows::get(&row, 2, OP)?;
        if state != JobState::InFlight {
            return Err(QueueError::JobState {
                op: OP,
                job_id,
                state,
            });
        }
        if owner.as_deref() != Some(ctx.node.as_str()) {
            return Err(QueueError::JobState {
                op: "complete (its lease was taken over by another node)",
                job_id,
                state,
            });
        }
        let done = u32::try_from(attempts).unwrap_or(0).saturating_add(1);
        let (new_state, next, error, status) = match outcome {
            Outcome::Delivered { status } => (JobState::Delivered, now, None, Some(*status)),
            Outcome::Retry { error, status } if !ctx.policy.exhausted(done) => (
                JobState::Queued,
                now.saturating_add(ctx.policy.backoff(done)),
                Some(error.as_str()),
                *status,
            ),
            Outcome::Retry { error, status } | Outcome::Dead { error, status } => {
                (JobState::Dead, now, Some(error.as_str()), *status)
            }
        };
        let new_attempts = i32::try_from(done).unwrap_or(i32::MAX);
        let status = status.map(i32::from);
        let n = c
            .execute(
                &write,
                &[
                    &job_id,
                    &new_state.as_str(),
                    &new_attempts,
                    &next.0,
                    &error,
                    &status,
                    &now.0,
                    &ctx.node,
                    &attempts,
                ],
            )
            .await
            .map_err(|e| errors::db(OP, e))?;
        if n == 1 {
            return Ok(new_state);
        }
    }
    Err(QueueError::Backend {
        op: OP,
        source: format!("job {job_id} kept changing while its outcome was recorded").into(),
    })
}

/// Start-up recovery of this node: its own leases (left by its previous run) back to queued,
/// attempt not counted. Other nodes' leases are theirs, or `release_stale`'s once they die.
pub(crate) async fn recover(c: &Client, ctx: &Ctx, now: UnixMillis) -> Result<RecoveryReport> {
    const OP: &str = "recover";
    let requeued = release_own(c, ctx, now).await?;
    let stmt = c
        .prepare_cached(
            "SELECT COUNT(*) FROM instances WHERE state = 'received' AND received_by = $1",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let row = c
        .query_one(&stmt, &[&ctx.node])
        .await
        .map_err(|e| errors::db(OP, e))?;
    let received: i64 = rows::get(&row, 0, OP)?;
    Ok(RecoveryReport {
        requeued_jobs: requeued,
        received_instances: u64::try_from(received).unwrap_or(0),
    })
}

/// Every lease this node holds back to queued, due now, attempt not counted: start-up
/// recovery and the hand-back of a draining node.
pub(crate) async fn release_own(c: &Client, ctx: &Ctx, now: UnixMillis) -> Result<u64> {
    const OP: &str = "release own leases";
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'queued', next_attempt_at = $2, updated_at = $2 \
             WHERE state = 'in_flight' AND lease_owner = $1",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    c.execute(&stmt, &[&ctx.node, &now.0])
        .await
        .map_err(|e| errors::db(OP, e))
}

/// Requeues (attempt not counted) this node's in-flight jobs taken by the lease calls `tokens`:
/// calls that failed on the client's side (connection lost) but may have committed.
pub(crate) async fn release_tokens(
    c: &Client,
    ctx: &Ctx,
    tokens: &[i64],
    now: UnixMillis,
) -> Result<u64> {
    const OP: &str = "release leases of failed calls";
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'queued', next_attempt_at = $3, updated_at = $3 \
             WHERE state = 'in_flight' AND lease_owner = $1 AND lease_token = ANY($2)",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    c.execute(&stmt, &[&ctx.node, &tokens, &now.0])
        .await
        .map_err(|e| errors::db(OP, e))
}

/// Requeues in-flight jobs (attempt not counted) whose lease is void: taken or renewed before
/// `leased_before` (the watchdog's limit), expired at `now`, or held by a node that is dead
/// at `now` (heartbeat older than the takeover time, state `left`, or no row at all).
pub(crate) async fn release_stale(
    c: &Client,
    ctx: &Ctx,
    leased_before: UnixMillis,
    now: UnixMillis,
) -> Result<u64> {
    const OP: &str = "release stale leases";
    let stmt = c
        .prepare_cached(
            "UPDATE jobs j SET state = 'queued', next_attempt_at = $2, updated_at = $2 \
             WHERE j.state = 'in_flight' AND (j.leased_at < $1 OR j.lease_expires_at <= $2 \
               OR (j.lease_owner IS DISTINCT FROM $3 AND NOT EXISTS (SELECT 1 FROM nodes n \
                   WHERE n.node_id = j.lease_owner AND n.state <> 'left' \
                   AND n.heartbeat_at >= $4)))",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let dead_before = now.0 - ctx.takeover_after_ms;
    c.execute(&stmt, &[&leased_before.0, &now.0, &ctx.node, &dead_before])
        .await
        .map_err(|e| errors::db(OP, e))
}

/// Extends this node's leases on `job_ids` (still in flight and still ours) to
/// `now + lease_ttl`; returns how many it still holds.
pub(crate) async fn renew(
    c: &Client,
    ctx: &Ctx,
    job_ids: &[JobId],
    now: UnixMillis,
) -> Result<u64> {
    const OP: &str = "renew leases";
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET leased_at = $2, lease_expires_at = $3 \
             WHERE id = ANY($1) AND state = 'in_flight' AND lease_owner = $4",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let expires = now.0.saturating_add(ctx.lease_ttl_ms);
    c.execute(&stmt, &[&job_ids, &now.0, &expires, &ctx.node])
        .await
        .map_err(|e| errors::db(OP, e))
}

/// Records this node's heartbeat (insert or update, state `up` unless draining).
pub(crate) async fn heartbeat(c: &Client, ctx: &Ctx, now: UnixMillis) -> Result<()> {
    const OP: &str = "heartbeat";
    let stmt = c
        .prepare_cached(
            "INSERT INTO nodes (node_id, started_at, heartbeat_at, state) VALUES ($1, $2, $2, 'up') \
             ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = $2, \
             state = CASE WHEN nodes.state = 'draining' THEN 'draining' ELSE 'up' END",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    c.execute(&stmt, &[&ctx.node, &now.0])
        .await
        .map_err(|e| errors::db(OP, e))?;
    Ok(())
}

/// Instances whose files may be purged (see `ForwardQueue::purgeable`).
pub(crate) async fn purgeable(
    c: &Client,
    finished_before: UnixMillis,
    dead_before: UnixMillis,
    limit: usize,
) -> Result<Vec<String>> {
    const OP: &str = "list purgeable";
    // Delivered and operator-dropped jobs count against `finished_before`, other dead letters
    // against `dead_before`; an instance without jobs (routed nowhere) against its routing time.
    let stmt = c
        .prepare_cached(
            "SELECT i.id FROM instances i LEFT JOIN jobs j ON j.instance_id = i.id \
             WHERE i.state = 'routed' GROUP BY i.id \
             HAVING COUNT(*) FILTER (WHERE j.state IN ('queued', 'in_flight')) = 0 \
             AND (COUNT(j.id) > 0 OR MAX(i.updated_at) <= $1) \
             AND COALESCE(MAX(j.updated_at) FILTER (WHERE j.state = 'delivered' \
                 OR (j.state = 'dead' AND j.last_error = $3)), 0) <= $1 \
             AND COALESCE(MAX(j.updated_at) FILTER (WHERE j.state = 'dead' \
                 AND j.last_error IS DISTINCT FROM $3), 0) <= $2 \
             ORDER BY MIN(i.received_at), i.id COLLATE \"C\" LIMIT $4",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let found = c
        .query(
            &stmt,
            &[
                &finished_before.0,
                &dead_before.0,
                &DROPPED,
                &rows::limit(limit),
            ],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    found.iter().map(|r| rows::get(r, 0, OP)).collect()
}

/// Marks a routed instance done, in a transaction that locks its row and checks that no job
/// is still to send.
pub(crate) async fn mark_done(c: &mut Client, id: &str, now: UnixMillis) -> Result<()> {
    const OP: &str = "mark done";
    let tx = c.transaction().await.map_err(|e| errors::db(OP, e))?;
    let row = tx
        .query_opt(
            "SELECT state FROM instances WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(|e| errors::db(OP, e))?
        .ok_or_else(|| QueueError::UnknownInstance { id: id.to_owned() })?;
    match rows::state::<InstanceState>(&row, 0, OP)? {
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
    let active = tx
        .query_one(
            "SELECT COUNT(*) FROM jobs WHERE instance_id = $1 \
             AND state IN ('queued', 'in_flight')",
            &[&id],
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    if rows::get::<i64>(&active, 0, OP)? > 0 {
        return Err(QueueError::InstanceState {
            op: "mark done (jobs still to send) of",
            id: id.to_owned(),
            state: InstanceState::Routed,
        });
    }
    tx.execute(
        "UPDATE instances SET state = 'done', updated_at = $2 WHERE id = $1",
        &[&id, &now.0],
    )
    .await
    .map_err(|e| errors::db(OP, e))?;
    tx.commit().await.map_err(|e| errors::db(OP, e))
}

/// Instances that are not done, oldest first.
pub(crate) async fn open_instances(c: &Client) -> Result<Vec<(String, InstanceState)>> {
    const OP: &str = "list open instances";
    let stmt = c
        .prepare_cached(
            "SELECT id, state FROM instances WHERE state <> 'done' ORDER BY received_at, id COLLATE \"C\"",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let found = c.query(&stmt, &[]).await.map_err(|e| errors::db(OP, e))?;
    found
        .iter()
        .map(|r| Ok((rows::get(r, 0, OP)?, rows::state(r, 1, OP)?)))
        .collect()
}

/// Jobs still to send of instance `id` become dead with `error`.
pub(crate) async fn fail_jobs(c: &Client, id: &str, error: &str, now: UnixMillis) -> Result<usize> {
    const OP: &str = "fail jobs";
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'dead', last_error = $2, updated_at = $3 \
             WHERE instance_id = $1 AND state IN ('queued', 'in_flight')",
        )
        .await
        .map_err(|e| errors::db(OP, e))?;
    let n = c
        .execute(&stmt, &[&id, &error, &now.0])
        .await
        .map_err(|e| errors::db(OP, e))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

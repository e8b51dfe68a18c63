//! [`PgStudies`]: the cluster backend of [`StudyState`], in the cluster's PostgreSQL (tables
//! `studies` and `study_members`, migration `migrations/cluster/V1__study_state.sql`, history
//! table `radroute_cluster_schema`).
//!
//! - **Hold** is one transaction: upsert the study row (its `last_arrival_at` moves forward),
//!   then upsert the member. The study row is written first, so a take or a finish working on
//!   the study (which lock that row) is serialised with it.
//! - **Take** is a lease: stable studies whose lease is free (none, expired, held by a node
//!   that stopped heartbeating or left, or this node's own from an unfinished round) are locked
//!   `FOR UPDATE SKIP LOCKED`, given this node as owner, an expiry and a fresh token, and every
//!   member present is marked with the token, in one transaction. Two nodes never take the same
//!   study at once.
//! - **Finish** locks the study row, deletes the members taken with its token, then deletes the
//!   study when nothing is left or frees its lease when instances arrived after the take (the
//!   next round).
//!
//! Like `PostgresQueue`, each synchronous call runs with `Handle::block_on` on the runtime that
//! drives the pool, within a call timeout; call it from blocking threads.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use radroute_queue::UnixMillis;
use radroute_route::{InstanceLabel, Study};
use radroute_store_postgres::LockedMigrationError;
use tokio::runtime::Handle;

use super::{Member, StudyState, StudyStateError, TakenStudy};

mod embedded {
    refinery::embed_migrations!("migrations/cluster");
}

/// refinery's history table of the cluster state's migrations.
pub const HISTORY_TABLE: &str = "radroute_cluster_schema";

/// Advisory lock key held while migrating ("rrclust" in ASCII).
const LOCK_KEY: i64 = 0x0072_7263_6c75_7374;

/// Most studies one take returns.
const TAKE_LIMIT: i64 = 64;

/// Applies the cluster state's migrations (after the queue's: members reference `instances`),
/// under an advisory lock so nodes starting together apply each once. Idempotent.
pub async fn migrate(pool: &Pool) -> Result<(), StudyStateError> {
    const OP: &str = "migrate";
    let mut client = pool.get().await.map_err(|e| StudyStateError::new(OP, e))?;
    radroute_store_postgres::run_locked(
        &mut client,
        LOCK_KEY,
        embedded::migrations::runner().set_migration_table_name(HISTORY_TABLE),
    )
    .await
    .map_err(|e| match e {
        LockedMigrationError::Lock(e) | LockedMigrationError::Unlock(e) => {
            StudyStateError::new(OP, e)
        }
        LockedMigrationError::Migrate(e) => StudyStateError::new(OP, e.to_string()),
    })?;
    Ok(())
}

/// This node's identity and the lease timings of [`PgStudies`].
#[derive(Debug, Clone)]
pub struct PgStudiesOptions {
    /// This node's id: the owner of its study leases.
    pub node_id: String,
    /// A node whose heartbeat is older than this is dead: its study leases are void.
    pub takeover_after: Duration,
    /// How long a study lease lasts at most (a backstop for a live node stuck in a route).
    pub lease_ttl: Duration,
    /// The longest one call may take (a connection, then its statements).
    pub call_timeout: Duration,
}

/// Study state in PostgreSQL, shared by every node of a cluster.
pub struct PgStudies {
    pool: Pool,
    handle: Handle,
    options: PgStudiesOptions,
}

impl PgStudies {
    /// A backend on the process's pool, whose connections `handle`'s runtime drives. The
    /// tables must exist ([`migrate`]).
    pub fn new(pool: Pool, handle: Handle, options: PgStudiesOptions) -> PgStudies {
        PgStudies {
            pool,
            handle,
            options,
        }
    }

    /// Runs `work` with a pooled connection on the pool's runtime, within the call timeout.
    fn call<T, F>(&self, op: &'static str, work: F) -> Result<T, StudyStateError>
    where
        F: for<'c> FnOnce(
            &'c mut Object,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
        >,
    {
        let limit = self.options.call_timeout;
        let pool = self.pool.clone();
        self.handle.block_on(async move {
            let run = async {
                let mut client = pool.get().await.map_err(|e| StudyStateError::new(op, e))?;
                work(&mut client)
                    .await
                    .map_err(|e| StudyStateError::new(op, e))
            };
            match tokio::time::timeout(limit, run).await {
                Ok(r) => r,
                Err(_) => Err(StudyStateError::new(
                    op,
                    format!("no answer from the database within {limit:?}"),
                )),
            }
        })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl StudyState for PgStudies {
    fn hold(&self, member: Member) -> Result<(), StudyStateError> {
        let node = self.options.node_id.clone();
        let now = UnixMillis::now().0;
        self.call("hold instance", move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute(
                    "INSERT INTO studies (study_instance_uid, first_seen, last_arrival_at) \
                     VALUES ($1, $2, $2) ON CONFLICT (study_instance_uid) DO UPDATE \
                     SET last_arrival_at = GREATEST(studies.last_arrival_at, EXCLUDED.last_arrival_at)",
                    &[&member.study_instance_uid, &now],
                )
                .await?;
                let deferred: Vec<i32> = member
                    .deferred
                    .iter()
                    .map(|&i| i32::try_from(i).unwrap_or(i32::MAX))
                    .collect();
                tx.execute(
                    "INSERT INTO study_members (instance_id, study_instance_uid, sop_instance_uid, \
                     label, confidence, note, destinations, deferred, held_by, observed_at, \
                     observed_seq) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nextval('study_observations')) \
                     ON CONFLICT (instance_id) DO UPDATE SET \
                     study_instance_uid = EXCLUDED.study_instance_uid, \
                     sop_instance_uid = EXCLUDED.sop_instance_uid, label = EXCLUDED.label, \
                     confidence = EXCLUDED.confidence, note = EXCLUDED.note, \
                     destinations = EXCLUDED.destinations, deferred = EXCLUDED.deferred, \
                     held_by = EXCLUDED.held_by, observed_at = EXCLUDED.observed_at, \
                     observed_seq = EXCLUDED.observed_seq, taken_token = NULL",
                    &[
                        &member.id,
                        &member.study_instance_uid,
                        &member.instance.sop_instance_uid,
                        &member.instance.label,
                        &member.instance.confidence,
                        &member.note,
                        &member.destinations,
                        &deferred,
                        &node,
                        &now,
                    ],
                )
                .await?;
                tx.commit().await
            })
        })
    }

    fn held(&self) -> Result<HashSet<String>, StudyStateError> {
        self.call("list held instances", |c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT instance_id FROM study_members", &[])
                    .await?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            })
        })
    }

    fn take_stable(&self, stable_after: Duration) -> Result<Vec<TakenStudy>, StudyStateError> {
        let node = self.options.node_id.clone();
        let now = UnixMillis::now().0;
        let stable_before = now - millis(stable_after);
        let dead_before = now - millis(self.options.takeover_after);
        let expires = now.saturating_add(millis(self.options.lease_ttl));
        let rows = self.call("take stable studies", move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let studies = tx
                    .query(
                        "WITH s AS (SELECT study_instance_uid FROM studies s \
                           WHERE s.last_arrival_at <= $2 \
                           AND (s.lease_owner IS NULL OR s.lease_owner = $1 \
                                OR s.lease_expires_at < $3 \
                                OR NOT EXISTS (SELECT 1 FROM nodes n \
                                   WHERE n.node_id = s.lease_owner AND n.state <> 'left' \
                                   AND n.heartbeat_at >= $4)) \
                           ORDER BY s.study_instance_uid COLLATE \"C\" LIMIT $6 \
                           FOR UPDATE SKIP LOCKED) \
                         UPDATE studies t SET lease_owner = $1, lease_expires_at = $5, \
                           lease_token = nextval('study_lease_tokens') \
                         FROM s WHERE t.study_instance_uid = s.study_instance_uid \
                         RETURNING t.study_instance_uid, t.lease_token",
                        &[
                            &node,
                            &stable_before,
                            &now,
                            &dead_before,
                            &expires,
                            &TAKE_LIMIT,
                        ],
                    )
                    .await?;
                let mut taken = Vec::with_capacity(studies.len());
                for s in &studies {
                    let uid: String = s.get(0);
                    let token: i64 = s.get(1);
                    let members = tx
                        .query(
                            "UPDATE study_members SET taken_token = $2 \
                             WHERE study_instance_uid = $1 \
                             RETURNING instance_id, sop_instance_uid, label, confidence, note, \
                               destinations, deferred, observed_seq",
                            &[&uid, &token],
                        )
                        .await?;
                    taken.push((uid, token, members));
                }
                tx.commit().await?;
                Ok(taken)
            })
        })?;
        let now = Instant::now();
        Ok(rows
            .into_iter()
            .map(|(uid, token, rows)| {
                let mut members: Vec<(i64, Member)> = rows
                    .iter()
                    .map(|r| {
                        let deferred: Vec<i32> = r.get(6);
                        (
                            r.get::<_, i64>(7),
                            Member {
                                id: r.get(0),
                                study_instance_uid: uid.clone(),
                                instance: InstanceLabel {
                                    sop_instance_uid: r.get(1),
                                    label: r.get(2),
                                    confidence: r.get(3),
                                },
                                note: r.get(4),
                                destinations: r.get(5),
                                deferred: deferred
                                    .into_iter()
                                    .filter_map(|i| usize::try_from(i).ok())
                                    .collect(),
                            },
                        )
                    })
                    .collect();
                members.sort_by_key(|(seq, _)| *seq);
                let members: Vec<Member> = members.into_iter().map(|(_, m)| m).collect();
                let mut study = Study::new(&uid, now);
                for m in &members {
                    study.add(m.instance.clone(), m.deferred.iter().copied());
                }
                TakenStudy {
                    study,
                    members,
                    token,
                }
            })
            .collect())
    }

    fn finish(&self, taken: &TakenStudy) -> Result<(), StudyStateError> {
        let uid = taken.study.study_instance_uid.clone();
        let token = taken.token;
        self.call("finish study", move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                // The row lock first: a hold in progress commits before, or waits until after.
                tx.execute(
                    "SELECT 1 FROM studies WHERE study_instance_uid = $1 FOR UPDATE",
                    &[&uid],
                )
                .await?;
                tx.execute(
                    "DELETE FROM study_members WHERE study_instance_uid = $1 AND taken_token = $2",
                    &[&uid, &token],
                )
                .await?;
                tx.execute(
                    "DELETE FROM studies s WHERE s.study_instance_uid = $1 AND s.lease_token = $2 \
                     AND NOT EXISTS (SELECT 1 FROM study_members m \
                                     WHERE m.study_instance_uid = $1)",
                    &[&uid, &token],
                )
                .await?;
                tx.execute(
                    "UPDATE studies SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE study_instance_uid = $1 AND lease_token = $2",
                    &[&uid, &token],
                )
                .await?;
                tx.commit().await
            })
        })
    }
}

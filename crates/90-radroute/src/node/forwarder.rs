//! One forward worker per destination: lease a batch, send it over one association, record
//! each outcome. A slow or dead destination only ever delays its own jobs.

use std::sync::Arc;
use std::time::Duration;

use radroute_forward::{send_batch, Destination, Outgoing, SendOutcome};
use radroute_queue::{ForwardQueue, JobState, Outcome, UnixMillis};
use radroute_spool::{FileKind, InstanceId, Spool};
use tokio::sync::{watch, Notify};
use tracing::warn;

/// Longest sleep between queue polls when nothing is due.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs the worker for a destination until `stop` turns true or the destination is removed
/// from the configuration (its watch turns `None`); the batch in progress completes first.
/// The destination's settings may change between batches (configuration reload).
pub async fn run(
    mut dest_rx: watch::Receiver<Option<Destination>>,
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<Spool>,
    batch_size: usize,
    wake: Arc<Notify>,
    wake_purge: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(dest) = dest_rx.borrow_and_update().clone() else {
            return;
        };
        let q = queue.clone();
        let name = dest.name.clone();
        let jobs = tokio::task::spawn_blocking(move || {
            q.lease(&name, batch_size.max(1), UnixMillis::now())
        })
        .await
        .ok()
        .and_then(|r| {
            r.map_err(|e| warn!(destination = %dest.name, error = %e, "lease failed"))
                .ok()
        })
        .unwrap_or_default();
        if jobs.is_empty() {
            let q = queue.clone();
            let name = dest.name.clone();
            let next = tokio::task::spawn_blocking(move || q.next_due(&name))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let sleep = next
                .map(|at| Duration::from_millis((at.0 - UnixMillis::now().0).max(0) as u64))
                .unwrap_or(IDLE_POLL)
                .min(IDLE_POLL);
            // Register interest before sleeping so a wake-up between lease and sleep is kept.
            let notified = wake.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = stop.changed() => {}
                _ = dest_rx.changed() => {}
            }
            continue;
        }
        let outgoing: Vec<Outgoing> = jobs
            .iter()
            .map(|job| {
                // What processing left: a whole processed file, or a coerced header to put
                // in front of the incoming file's pixels, or nothing (forward as received).
                let (path, header) = match job.instance_id.parse::<InstanceId>() {
                    Ok(id) if spool.contains(FileKind::Processed, &id) => {
                        (spool.path(FileKind::Processed, &id), None)
                    }
                    Ok(id) if spool.contains(FileKind::Header, &id) => (
                        spool.path(FileKind::Incoming, &id),
                        Some(spool.path(FileKind::Header, &id)),
                    ),
                    Ok(id) => (spool.path(FileKind::Incoming, &id), None),
                    Err(_) => (spool.root().join("invalid-instance-id"), None),
                };
                Outgoing {
                    key: job.id,
                    sop_class_uid: job.sop_class_uid.clone(),
                    sop_instance_uid: job.sop_instance_uid.clone(),
                    transfer_syntax: job.transfer_syntax.clone(),
                    path,
                    header,
                    priority: match job.priority {
                        p if p > 0 => radroute_dimse::Priority::High,
                        p if p < 0 => radroute_dimse::Priority::Low,
                        _ => radroute_dimse::Priority::Medium,
                    },
                }
            })
            .collect();
        let started = std::time::Instant::now();
        let outcomes = send_batch(&dest, &outgoing).await;
        metrics::histogram!("radroute_stage_seconds", "stage" => "forward_batch")
            .record(started.elapsed().as_secs_f64());
        let q = queue.clone();
        let name = dest.name.clone();
        let results = tokio::task::spawn_blocking(move || {
            let now = UnixMillis::now();
            let mut delivered = 0;
            for (job, outcome) in jobs.iter().zip(outcomes) {
                let outcome = match outcome {
                    SendOutcome::Delivered { status } => Outcome::Delivered { status: status.0 },
                    SendOutcome::Retry { reason, status } => Outcome::Retry { error: reason, status: status.map(|s| s.0) },
                    SendOutcome::Dead { reason, status } => Outcome::Dead { error: reason, status: status.map(|s| s.0) },
                };
                match q.complete(job.id, &outcome, now) {
                    Ok(state) => {
                        let label = match state {
                            JobState::Delivered => "delivered",
                            JobState::Dead => "dead",
                            _ => "retry",
                        };
                        if state == JobState::Delivered {
                            delivered += 1;
                        }
                        if state == JobState::Dead {
                            warn!(destination = %name, job = job.id, sop_instance_uid = %job.sop_instance_uid, outcome = ?outcome, "job moved to dead letters");
                        }
                        metrics::counter!("radroute_forward_total", "destination" => name.clone(), "outcome" => label).increment(1);
                    }
                    Err(e) => warn!(destination = %name, job = job.id, error = %e, "cannot record outcome"),
                }
            }
            delivered
        })
        .await
        .unwrap_or(0);
        if results > 0 {
            wake_purge.notify_one();
        }
    }
}

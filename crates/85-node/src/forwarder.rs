//! Forward workers, `associations` per destination: lease a batch, send it over an association
//! kept open while batches keep coming, record each outcome. A slow or dead destination only
//! ever delays its own jobs. The workers of a destination share its [`Gate`]: a worker opens an
//! association only when the destination takes one more (learned, at most `associations`) and no
//! sibling lingers idle, and lets its association go when a sibling waits for the destination.

use std::sync::Arc;
use std::time::Duration;

use radroute_forward::{retry_all, Destination, Outgoing, SendOutcome, Session};
use radroute_queue::{ForwardQueue, JobState, Outcome, UnixMillis};
use radroute_spool::{FileKind, InstanceId, InstanceStore, SpoolError};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::forward_gate::{Gate, Permit};

/// Longest sleep between queue polls when nothing is due.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs forward worker number `slot` of a destination until `stop` turns true, the destination
/// is removed from the configuration (its watch turns `None`) or its `associations` drop to
/// `slot` or fewer; the batch in progress completes first. The destination's settings may change
/// between batches (configuration reload): an open association is then released and the next
/// one uses the new settings.
///
/// An association stays open after a batch while more jobs come within the destination's
/// linger time and fit its presentation contexts, unless `gate` asks for it (a sibling waits
/// for a destination that serves fewer associations than are open).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    slot: usize,
    mut dest_rx: watch::Receiver<Option<Destination>>,
    gate: Arc<Gate>,
    queue: Arc<dyn ForwardQueue>,
    spool: Arc<dyn InstanceStore>,
    batch_size: usize,
    wake: Arc<Notify>,
    wake_purge: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    audit: Arc<radroute_audit::Audit>,
) {
    let mut session: Option<Session> = None;
    // The gate's slot of this worker's association: held while it opens and stays open.
    let mut permit: Option<Permit> = None;
    let mut gate_rx = gate.subscribe();
    loop {
        let dest = dest_rx.borrow_and_update().clone();
        let dest = match dest {
            Some(dest) if !*stop.borrow() && slot < dest.associations => dest,
            _ => {
                close(&mut session).await;
                return;
            }
        };
        if session.as_ref().is_some_and(|s| s.destination() != &dest) {
            close(&mut session).await;
        }
        if session.is_some() && (permit.is_none() || gate.should_release()) {
            debug!(destination = %dest.name, "releasing the association for a sibling");
            close(&mut session).await;
        }
        if session.is_none() {
            // Let the slot go first: this worker competes for it again like its siblings.
            permit = None;
            let notified = wake.notified();
            gate_rx.borrow_and_update();
            match gate.try_acquire() {
                Some(p) => permit = Some(p),
                None => {
                    // The destination takes no more associations now, or a sibling's idle one
                    // will take the work: wait for that to change (or new jobs, or a while).
                    tokio::select! {
                        _ = notified => {}
                        _ = gate_rx.changed() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = stop.changed() => {}
                        _ = dest_rx.changed() => {}
                    }
                    continue;
                }
            }
        }
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
            // Register interest before looking further so a wake-up in between is kept.
            let notified = wake.notified();
            let lingering = session.is_some();
            if lingering {
                if let Some(p) = permit.as_mut() {
                    p.set_idle(true);
                }
            } else {
                // Nothing to open an association for: the slot goes back.
                permit = None;
            }
            gate_rx.borrow_and_update();
            let sleep = if lingering {
                dest.linger
            } else {
                let q = queue.clone();
                let name = dest.name.clone();
                let next = tokio::task::spawn_blocking(move || q.next_due(&name))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten();
                next.map(|at| Duration::from_millis((at.0 - UnixMillis::now().0).max(0) as u64))
                    .unwrap_or(IDLE_POLL)
                    .min(IDLE_POLL)
            };
            let woken = tokio::select! {
                _ = notified => true,
                _ = tokio::time::sleep(sleep) => false,
                _ = stop.changed() => true,
                _ = dest_rx.changed() => true,
                // A sibling may be waiting for this association to go (looked at above).
                _ = gate_rx.changed(), if lingering => true,
            };
            if let Some(p) = permit.as_mut() {
                p.set_idle(false);
            }
            if !woken {
                // Idle for the linger time: let the association go.
                close(&mut session).await;
            }
            continue;
        }
        // Where each job's bytes are: local files here, scratch copies fetched from a remote
        // store (blocking I/O, so off the async threads).
        let store = spool.clone();
        let ids: Vec<String> = jobs.iter().map(|job| job.instance_id.clone()).collect();
        let files = tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|id| files_to_send(store.as_ref(), id))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            jobs.iter()
                .map(|_| Err(format!("instance file lookup failed: {e}")))
                .collect()
        });
        // A job whose bytes cannot be had right now (store unreachable) is retried without
        // being sent; the others go out as one batch.
        let mut outgoing: Vec<Outgoing> = Vec::with_capacity(jobs.len());
        let mut unavailable: Vec<Option<String>> = Vec::with_capacity(jobs.len());
        for (job, files) in jobs.iter().zip(files) {
            match files {
                Ok((path, header)) => {
                    outgoing.push(Outgoing {
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
                    });
                    unavailable.push(None);
                }
                Err(reason) => unavailable.push(Some(reason)),
            }
        }
        if jobs.len() >= batch_size.max(1) {
            if let Some(p) = permit.as_ref() {
                // More may be waiting: a sibling may open an association beside this one.
                p.full_batch();
            }
        }
        let started = std::time::Instant::now();
        let mut sent = match permit.as_mut() {
            _ if outgoing.is_empty() => Vec::new(),
            Some(p) => send(&mut session, p, &dest, &outgoing).await,
            None => retry_all(&outgoing, "no association slot"),
        }
        .into_iter();
        let outcomes: Vec<SendOutcome> = unavailable
            .into_iter()
            .map(|reason| match reason {
                Some(reason) => SendOutcome::Retry {
                    reason,
                    status: None,
                },
                None => sent.next().unwrap_or_else(|| SendOutcome::Retry {
                    reason: "no outcome for this job".into(),
                    status: None,
                }),
            })
            .collect();
        metrics::histogram!("radroute_stage_seconds", "stage" => "forward_batch")
            .record(started.elapsed().as_secs_f64());
        let q = queue.clone();
        let name = dest.name.clone();
        let audit = audit.clone();
        let peer = radroute_audit::Peer {
            ae_title: dest.ae_title.clone(),
            address: dest.address.rsplit_once(':').map(|(h, _)| h.to_string()),
        };
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
                            crate::reachability::mark(&name, true);
                        }
                        if matches!(state, JobState::Delivered | JobState::Dead) {
                            let failure = match &outcome {
                                Outcome::Dead { error, .. } | Outcome::Retry { error, .. } => Some(error.as_str()),
                                Outcome::Delivered { .. } => None,
                            };
                            audit.instance_forwarded(&peer, &audit_instance(job), failure);
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

/// Sends `outgoing` over the open session when it fits, else over a new one opened under
/// `permit`. A reused association that turns out closed before the destination answered
/// anything (a destination that drops idle associations) is replaced once, so the batch is not
/// counted as a failure.
async fn send(
    session: &mut Option<Session>,
    permit: &mut Permit,
    dest: &Destination,
    outgoing: &[Outgoing],
) -> Vec<SendOutcome> {
    if session
        .as_ref()
        .is_some_and(|s| !outgoing.iter().all(|o| s.covers(o)))
    {
        close(session).await;
    }
    let mut reused = session.is_some();
    loop {
        if session.is_none() {
            match permit.open(open_bounded(dest, outgoing)).await {
                Ok(s) => {
                    crate::reachability::mark(&dest.name, true);
                    *session = Some(s)
                }
                Err(e) => {
                    crate::reachability::mark(&dest.name, false);
                    warn!(destination = %dest.name, error = %e, batch = outgoing.len(), "cannot open association");
                    return retry_all(outgoing, &e.to_string());
                }
            }
        }
        let Some(open) = session.as_mut() else {
            return retry_all(outgoing, "no association");
        };
        let outcomes = open.send(outgoing).await;
        if open.is_usable() {
            return outcomes;
        }
        let again = reused && open.broke_unanswered();
        close(session).await;
        if !again {
            return outcomes;
        }
        info!(destination = %dest.name, "idle association was closed by the destination; opening a new one");
        reused = false;
    }
}

/// Opens an association for `outgoing`, given up after the destination's connect and I/O
/// timeouts together (however the association library applies them).
async fn open_bounded(
    dest: &Destination,
    outgoing: &[Outgoing],
) -> Result<Session, radroute_forward::ForwardError> {
    let bound = dest.connect_timeout + dest.io_timeout;
    tokio::time::timeout(bound, Session::open(dest, outgoing))
        .await
        .unwrap_or_else(|_| {
            Err(radroute_forward::ForwardError::Association {
                destination: dest.name.clone(),
                address: dest.address.clone(),
                reason: format!("no answer within {} ms", bound.as_millis()),
            })
        })
}

/// What an audit message says about a job's instance (the queue keeps no patient data).
fn audit_instance(job: &radroute_queue::Job) -> radroute_audit::InstanceRef {
    radroute_audit::InstanceRef {
        study_instance_uid: job.study_instance_uid.clone().unwrap_or_default(),
        sop_class_uid: job.sop_class_uid.clone(),
        sop_instance_uid: job.sop_instance_uid.clone(),
        ..Default::default()
    }
}

/// Releases the open association, if any.
async fn close(session: &mut Option<Session>) {
    if let Some(s) = session.take() {
        s.close().await;
    }
}

/// The local files to send for the instance `id`: the processed file, or the incoming file
/// behind a coerced header, or the incoming file as received. With a remote store these are
/// scratch copies, fetched on first use.
///
/// Bytes that are gone (no such instance in the store, an id that is not one) yield a path that
/// does not exist: the send refuses it and the job becomes a dead letter saying so. Bytes that
/// cannot be had right now (the store unreachable) are an `Err`: the job is retried later.
fn files_to_send(
    store: &dyn InstanceStore,
    id: &str,
) -> Result<(std::path::PathBuf, Option<std::path::PathBuf>), String> {
    let missing = || std::path::Path::new("/nonexistent/radroute-missing").join(id);
    let Ok(id) = id.parse::<InstanceId>() else {
        return Ok((missing(), None));
    };
    // A derived object that cannot be looked up right now is not the same as none: sending the
    // original instead would forward it without its label.
    let unavailable = |e: SpoolError| {
        tracing::warn!(id = %id, error = %e, "instance bytes unavailable for forwarding");
        format!("instance bytes unavailable: {e}")
    };
    match store.local_file(FileKind::Processed, &id) {
        Ok(processed) => return Ok((processed, None)),
        Err(SpoolError::NotFound { .. }) => {}
        Err(e) => return Err(unavailable(e)),
    }
    let header = match store.local_file(FileKind::Header, &id) {
        Ok(header) => Some(header),
        Err(SpoolError::NotFound { .. }) => None,
        Err(e) => return Err(unavailable(e)),
    };
    match store.local_file(FileKind::Incoming, &id) {
        Ok(incoming) => Ok((incoming, header)),
        Err(SpoolError::NotFound { .. }) => Ok((missing(), None)),
        Err(e) => Err(unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radroute_spool::{FileStat, Spool, Usage};
    use std::path::PathBuf;

    /// A local spool whose coerced headers cannot be looked up (a remote store gone away).
    #[derive(Debug)]
    struct HeaderUnreachable(Spool);

    impl InstanceStore for HeaderUnreachable {
        fn backend(&self) -> &'static str {
            "test"
        }
        fn put(
            &self,
            kind: FileKind,
            id: &InstanceId,
            parts: &[&[u8]],
        ) -> radroute_spool::Result<()> {
            InstanceStore::put(&self.0, kind, id, parts)
        }
        fn read(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<Vec<u8>> {
            InstanceStore::read(&self.0, kind, id)
        }
        fn local_file(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<PathBuf> {
            if kind == FileKind::Header {
                return Err(SpoolError::Backend {
                    backend: "test",
                    op: "local file",
                    target: id.to_string(),
                    full: false,
                    source: "connection closed".into(),
                });
            }
            InstanceStore::local_file(&self.0, kind, id)
        }
        fn contains(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<bool> {
            InstanceStore::contains(&self.0, kind, id)
        }
        fn stat(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<FileStat> {
            InstanceStore::stat(&self.0, kind, id)
        }
        fn remove_kind(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<()> {
            InstanceStore::remove_kind(&self.0, kind, id)
        }
        fn remove(&self, id: &InstanceId) -> radroute_spool::Result<()> {
            InstanceStore::remove(&self.0, id)
        }
        fn list(&self, kind: FileKind) -> radroute_spool::Result<Vec<InstanceId>> {
            InstanceStore::list(&self.0, kind)
        }
        fn quarantine(&self, kind: FileKind, id: &InstanceId) -> radroute_spool::Result<String> {
            InstanceStore::quarantine(&self.0, kind, id)
        }
        fn free_bytes(&self) -> radroute_spool::Result<u64> {
            InstanceStore::free_bytes(&self.0)
        }
        fn usage(&self) -> radroute_spool::Result<Usage> {
            InstanceStore::usage(&self.0)
        }
        fn check_ready(&self) -> radroute_spool::Result<()> {
            InstanceStore::check_ready(&self.0)
        }
    }

    #[test]
    fn a_header_that_cannot_be_looked_up_is_retried_not_sent_without() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = HeaderUnreachable(Spool::open(dir.path()).expect("spool"));
        let id = InstanceId::generate();
        InstanceStore::put(&store, FileKind::Incoming, &id, &[b"instance"]).expect("put");
        InstanceStore::put(&store, FileKind::Header, &id, &[b"labelled header"]).expect("put");
        let found = files_to_send(&store, id.as_str());
        assert!(
            matches!(&found, Err(reason) if reason.contains("unavailable")),
            "sent without its coerced header: {found:?}"
        );
        // Only a header that is not there means "send the original as received".
        InstanceStore::remove_kind(&store, FileKind::Header, &id).expect("remove");
        let (path, header) = files_to_send(&store.0, id.as_str()).expect("incoming");
        assert!(path.is_file() && header.is_none());
    }
}

//! Start-up recovery: the spool is the source of truth, the queue database its index.
//!
//! Runs once, before anything is accepted, processed or forwarded:
//!
//! 1. The queue's own recovery: jobs in flight at the crash are queued again.
//! 2. Every instance the queue has open (`received`, `routed`) is checked against its files:
//!    a `received` one loses its stale header/processed file (processing writes a fresh one,
//!    or none: a stale one must never be sent instead); one whose incoming file is missing
//!    cannot be sent at all, so its jobs become dead letters with that reason (a `received`
//!    one is routed nowhere with that note) instead of retrying for hours.
//! 3. Every incoming file the queue does not have open:
//!    - unknown to the queue (a crash between the spool write and the queue commit, a lost or
//!      older `queue.sqlite`, a wrong `queue.path`): re-ingested as a received instance, with
//!      what the file says (its meta and the data set header), and then processed and routed
//!      like any received instance. Never deleted: it may have been acknowledged. The file
//!      does not record the sender's address or the called AE title: routing sees peer
//!      0.0.0.0 and this node's AE title (`when.source` routes do not match it).
//!    - not readable as Part 10 with a SOP Instance UID in its meta: moved to `quarantine/`.
//!    - `done` in the queue: a purge that was interrupted (the purger marks done first);
//!      the files are removed.
//!
//! Only `tmp/` files are ever deleted unread (`Spool::open`): incomplete, never acknowledged.
//! Every action is logged and counted in `radroute_spool_recovered_total{action}`.

use std::collections::{BTreeSet, HashMap};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radroute_queue::{ForwardQueue, InstanceState, NewInstance, UnixMillis};
use radroute_spool::{FileKind, InstanceId, InstanceStore};
use tracing::{info, warn};

/// Peer address recorded for a re-ingested instance: the sender's address is not in the file.
pub(crate) const UNKNOWN_PEER: &str = "0.0.0.0:0";

/// Reason given to the jobs of an instance whose incoming file is gone.
const MISSING: &str = "incoming spool file missing at start-up: nothing left to send";

/// What recovery did (also logged and counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Unknown intact files added to the queue as received instances.
    pub reingested: u64,
    /// Unreadable files moved to `quarantine/`.
    pub quarantined: u64,
    /// Open instances whose incoming file is missing (their jobs are dead letters now).
    pub missing: u64,
    /// Instances whose interrupted purge was finished.
    pub purges_finished: u64,
}

/// Runs start-up recovery (see the module documentation). `ae_title` is recorded as the called
/// AE title of re-ingested instances (the node's own: the file does not say which it was).
pub(crate) fn recover(
    spool: &dyn InstanceStore,
    queue: &dyn ForwardQueue,
    ae_title: &str,
) -> Summary {
    // Recovery runs before the admin surface starts: install the metrics recorder first so
    // its counters are not lost.
    let _ = crate::telemetry::prometheus();
    let now = UnixMillis::now();
    match queue.recover(now) {
        Ok(report) => info!(
            requeued_jobs = report.requeued_jobs,
            unprocessed_instances = report.received_instances,
            "queue recovered"
        ),
        Err(e) => warn!(error = %e, "queue recovery failed"),
    }
    let mut summary = Summary::default();
    let incoming: BTreeSet<InstanceId> = match spool.list(FileKind::Incoming) {
        Ok(ids) => ids.into_iter().collect(),
        Err(e) => {
            // Without the listing nothing can be compared; touch nothing.
            warn!(error = %e, "cannot list the spool: no spool recovery");
            return summary;
        }
    };
    let open: HashMap<String, InstanceState> = match queue.open_instances() {
        Ok(open) => open.into_iter().collect(),
        Err(e) => {
            warn!(error = %e, "cannot list open instances: no spool recovery");
            return summary;
        }
    };
    for (id, state) in &open {
        check_open(spool, queue, id, *state, &incoming, now, &mut summary);
    }
    for id in incoming.iter().filter(|id| !open.contains_key(id.as_str())) {
        match queue.instance(id.as_str()) {
            Ok(None) => reingest(spool, queue, id, ae_title, &mut summary),
            Ok(Some(detail)) if detail.instance.state == InstanceState::Done => {
                finish_purge(spool, id, &mut summary)
            }
            // Opened since the listing (cannot happen before the node starts): leave it.
            Ok(Some(_)) => {}
            Err(e) => {
                warn!(id = %id, error = %e, "cannot look the spool file up in the queue; left as is")
            }
        }
    }
    derived_leftovers(spool, queue, &incoming, &open, &mut summary);
    if summary != Summary::default() {
        warn!(
            reingested = summary.reingested,
            quarantined = summary.quarantined,
            missing = summary.missing,
            purges_finished = summary.purges_finished,
            "spool and queue disagreed: recovered from the spool"
        );
    }
    summary
}

/// One instance the queue has open: drop stale derived files of a `received` one, give up the
/// jobs of one whose incoming file is gone.
fn check_open(
    spool: &dyn InstanceStore,
    queue: &dyn ForwardQueue,
    id: &str,
    state: InstanceState,
    incoming: &BTreeSet<InstanceId>,
    now: UnixMillis,
    summary: &mut Summary,
) {
    let Ok(parsed) = id.parse::<InstanceId>() else {
        warn!(id = %id, "queue instance id is not a spool id");
        return;
    };
    let present = incoming.contains(&parsed);
    if present && state == InstanceState::Received {
        remove_stale(spool, &parsed);
        return;
    }
    // A whole processed file is sent without the incoming file.
    if present
        || (state == InstanceState::Routed
            && spool
                .contains(FileKind::Processed, &parsed)
                .unwrap_or(false))
    {
        return;
    }
    let result = match state {
        InstanceState::Routed => queue.fail_jobs(id, MISSING, now).map(|n| n > 0),
        // Nothing to process: routed nowhere, with the reason as its note.
        _ => queue
            .route_instance(id, None, Some(MISSING), &[], now)
            .map(|()| true),
    };
    match result {
        Ok(true) => {
            warn!(id = %id, state = %state, "incoming spool file missing: its jobs are dead letters");
            summary.missing += 1;
            count("missing");
        }
        Ok(false) => {}
        Err(e) => warn!(id = %id, error = %e, "cannot record the missing spool file"),
    }
}

/// Removes the header and processed files of an instance that is to be processed (again):
/// they are stale, and the forwarder would send one in preference to the incoming file.
fn remove_stale(spool: &dyn InstanceStore, id: &InstanceId) {
    for kind in [FileKind::Processed, FileKind::Header] {
        if spool.contains(kind, id).unwrap_or(false) {
            match spool.remove_kind(kind, id) {
                Ok(()) => info!(id = %id, kind = %kind, "stale file removed before processing"),
                Err(e) => warn!(id = %id, kind = %kind, error = %e, "cannot remove a stale file"),
            }
        }
    }
}

/// Adds an intact incoming file the queue does not know as a received instance, or moves it
/// to `quarantine/` when it does not read as Part 10.
fn reingest(
    spool: &dyn InstanceStore,
    queue: &dyn ForwardQueue,
    id: &InstanceId,
    ae_title: &str,
    summary: &mut Summary,
) {
    let row = match describe(spool, id, ae_title) {
        Ok(row) => row,
        Err(reason) => {
            match spool.quarantine(FileKind::Incoming, id) {
                Ok(to) => {
                    warn!(id = %id, reason = %reason, to = %to, "spool file unreadable: moved to quarantine");
                    summary.quarantined += 1;
                    count("quarantined");
                }
                Err(e) => {
                    warn!(id = %id, reason = %reason, error = %e, "spool file unreadable and cannot be moved to quarantine; left as is")
                }
            }
            return;
        }
    };
    remove_stale(spool, id);
    match queue.add_instance(&row) {
        Ok(()) => {
            info!(
                id = %id,
                sop_instance_uid = %row.sop_instance_uid,
                calling_ae = %row.calling_ae,
                "spool file unknown to the queue: re-ingested as a received instance"
            );
            summary.reingested += 1;
            count("reingested");
        }
        Err(e) => warn!(id = %id, error = %e, "cannot re-ingest spool file; left as is"),
    }
}

/// The queue row of an incoming file, from the file alone: SOP Class and Instance UID and
/// transfer syntax from its meta, calling AE from the meta's Source Application Entity Title,
/// Study Instance UID from the data set header (read up to it, not the pixels), reception time
/// from the file's modification time (spool files are written once).
fn describe(
    spool: &dyn InstanceStore,
    id: &InstanceId,
    ae_title: &str,
) -> Result<NewInstance, String> {
    let stat = spool
        .stat(FileKind::Incoming, id)
        .map_err(|e| e.to_string())?;
    let obj: DefaultDicomObject = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(Tag(0x0020, 0x000E))
        .open_file(
            spool
                .local_file(FileKind::Incoming, id)
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("not a readable Part-10 file: {e}"))?;
    let meta = obj.meta();
    let sop_instance_uid = meta.media_storage_sop_instance_uid().trim().to_string();
    if sop_instance_uid.is_empty() {
        return Err("no SOP Instance UID in the file meta".into());
    }
    let sop_class_uid = meta.media_storage_sop_class_uid().trim().to_string();
    let transfer_syntax = meta.transfer_syntax().trim().to_string();
    if sop_class_uid.is_empty() || transfer_syntax.is_empty() {
        return Err("no SOP Class UID or transfer syntax in the file meta".into());
    }
    let calling_ae = meta
        .source_application_entity_title
        .as_deref()
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .unwrap_or_default();
    Ok(NewInstance {
        id: id.as_str().to_string(),
        sop_instance_uid,
        sop_class_uid,
        transfer_syntax,
        study_instance_uid: radroute_dataset::attr::text(&obj, tags::STUDY_INSTANCE_UID),
        calling_ae,
        called_ae: ae_title.to_string(),
        peer_addr: UNKNOWN_PEER.to_string(),
        received_at: UnixMillis::from_system_time(stat.modified),
        bytes: stat.bytes,
    })
}

/// Files of an instance the queue has `done`: its purge was interrupted; finish it.
fn finish_purge(spool: &dyn InstanceStore, id: &InstanceId, summary: &mut Summary) {
    match spool.remove(id) {
        Ok(()) => {
            info!(id = %id, "files of a purged instance removed (interrupted purge)");
            summary.purges_finished += 1;
            count("purge_finished");
        }
        Err(e) => warn!(id = %id, error = %e, "cannot finish an interrupted purge"),
    }
}

/// Header and processed files without an incoming file, of instances the queue does not have
/// open: removed when the queue has the instance `done` (interrupted purge), else moved to
/// `quarantine/` (a processed file is a whole instance: never deleted unread).
fn derived_leftovers(
    spool: &dyn InstanceStore,
    queue: &dyn ForwardQueue,
    incoming: &BTreeSet<InstanceId>,
    open: &HashMap<String, InstanceState>,
    summary: &mut Summary,
) {
    for kind in [FileKind::Processed, FileKind::Header] {
        let Ok(ids) = spool.list(kind) else { continue };
        for id in ids
            .iter()
            .filter(|id| !incoming.contains(*id) && !open.contains_key(id.as_str()))
        {
            match queue.instance(id.as_str()) {
                Ok(Some(d)) if d.instance.state == InstanceState::Done => {
                    finish_purge(spool, id, summary)
                }
                Ok(None) => match spool.quarantine(kind, id) {
                    Ok(to) => {
                        warn!(id = %id, kind = %kind, to = %to, "derived spool file without its instance: moved to quarantine");
                        summary.quarantined += 1;
                        count("quarantined");
                    }
                    Err(e) => {
                        warn!(id = %id, error = %e, "cannot move a derived spool file to quarantine")
                    }
                },
                _ => {}
            }
        }
    }
}

fn count(action: &'static str) {
    metrics::counter!(crate::telemetry::SPOOL_RECOVERED, "action" => action).increment(1);
}

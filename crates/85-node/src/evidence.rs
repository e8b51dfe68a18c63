//! The evidence the console shows (radroute-evidence), kept by the node: what processing saw
//! and decided for an instance ([`Header`], [`build`], recorded by process.rs), each forward
//! attempt and operator action on a job, and its removal with the instance's files.
//!
//! Attempts and removals go through [`EvidenceQueue`], a [`ForwardQueue`] that wraps the real
//! one: the forwarder, the purger, the admin API and the console call the queue as before, and
//! the wrapper writes the evidence beside each `complete`, `retry_job`, `drop_job`,
//! `retry_dead` and `mark_done`. Evidence is best effort: its failure is logged, never returned.

use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use radroute_evidence::{Evidence, EvidenceStore, JobEvent};
use radroute_queue::{
    Counts, ForwardQueue, InstanceDetail, InstanceRecord, InstanceState, Job, JobFilter, JobId,
    JobState, JobView, NewInstance, Outcome, RecoveryReport, Result, Retention, UnixMillis,
};
use radroute_route::{Edit, RouteDecision};
use tracing::warn;

use crate::label::LabelOutcome;
use radroute_dataset::attr::text;

/// Header values the console searches and shows, read as received (before labelling and
/// rule edits).
#[derive(Debug, Clone, Default)]
pub(crate) struct Header {
    study_instance_uid: Option<String>,
    accession: Option<String>,
    study_date: Option<String>,
    modality: Option<String>,
    patient_name: Option<String>,
    patient_id: Option<String>,
    body_part: Option<String>,
}

impl Header {
    /// Reads the header values of `obj`.
    pub(crate) fn of(obj: &DefaultDicomObject) -> Header {
        Header {
            study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
            accession: text(obj, tags::ACCESSION_NUMBER),
            study_date: text(obj, tags::STUDY_DATE),
            modality: text(obj, tags::MODALITY),
            patient_name: text(obj, tags::PATIENT_NAME),
            patient_id: text(obj, tags::PATIENT_ID),
            body_part: text(obj, tags::BODY_PART_EXAMINED),
        }
    }
}

/// A header edit as the console shows it.
fn edit_text(e: &Edit) -> String {
    match e {
        Edit::Set { tag, value } => format!("{tag} = {value:?}"),
        Edit::Remove { tag } => format!("remove {tag}"),
    }
}

/// The evidence of one instance: its header as received, what labelling found, what the rules
/// decided.
pub(crate) fn build(
    instance_id: &str,
    calling_ae: &str,
    header: Header,
    outcome: &LabelOutcome,
    decision: &RouteDecision,
    note: Option<String>,
) -> Evidence {
    Evidence {
        instance_id: instance_id.to_string(),
        recorded_at: UnixMillis::now().0,
        study_instance_uid: header.study_instance_uid,
        accession: header.accession,
        study_date: header.study_date,
        modality: header.modality,
        calling_ae: calling_ae.to_string(),
        patient_name: header.patient_name,
        patient_id: header.patient_id,
        body_part_received: header.body_part,
        label: outcome.label.clone(),
        scores: outcome.scores.clone(),
        model: outcome.model.clone(),
        note,
        matched: decision.matched.iter().map(|r| r.name.clone()).collect(),
        destinations: decision.destinations.clone(),
        edits: decision.edits.iter().map(edit_text).collect(),
        dropped_by: decision.dropped.as_ref().map(|r| r.name.clone()),
        used_fallback: decision.used_fallback,
        held_for: decision
            .deferred_to_study
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    }
}

/// Records an instance's evidence (and its model input picture); a failure is logged.
pub(crate) fn record(store: Option<&EvidenceStore>, evidence: &Evidence, png: Option<&[u8]>) {
    if let Some(store) = store {
        if let Err(e) = store.record(evidence, png) {
            warn!(id = %evidence.instance_id, error = %e, "cannot record evidence");
        }
    }
}

/// Dead letters read to record a bulk retry (beyond it, the events of older ones are not
/// written; the retry itself is not limited).
const BULK_EVENTS: usize = 10_000;

/// The forward queue with the evidence written beside the job transitions.
pub struct EvidenceQueue {
    inner: Arc<dyn ForwardQueue>,
    store: Arc<EvidenceStore>,
}

impl EvidenceQueue {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ForwardQueue>, store: Arc<EvidenceStore>) -> EvidenceQueue {
        EvidenceQueue { inner, store }
    }

    fn event(&self, job_id: JobId, now: UnixMillis, outcome: &str, detail: Option<String>) {
        let ev = JobEvent {
            job_id,
            at: now.0,
            outcome: outcome.to_string(),
            detail,
        };
        if let Err(e) = self.store.job_event(&ev) {
            warn!(job = job_id, error = %e, "cannot record job event");
        }
    }
}

fn status_text(error: &str, status: Option<u16>) -> String {
    match status {
        Some(s) => format!("{error} (status {s:04X})"),
        None => error.to_string(),
    }
}

impl ForwardQueue for EvidenceQueue {
    fn add_instance(&self, instance: &NewInstance) -> Result<()> {
        self.inner.add_instance(instance)
    }
    fn pending_processing(&self, limit: usize) -> Result<Vec<InstanceRecord>> {
        self.inner.pending_processing(limit)
    }
    fn route_instance_with_priority(
        &self,
        id: &str,
        label: Option<&str>,
        note: Option<&str>,
        destinations: &[String],
        priority: i8,
        now: UnixMillis,
    ) -> Result<()> {
        self.inner
            .route_instance_with_priority(id, label, note, destinations, priority, now)
    }
    fn lease(&self, destination: &str, max: usize, now: UnixMillis) -> Result<Vec<Job>> {
        self.inner.lease(destination, max, now)
    }
    fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>> {
        self.inner.next_due(destination)
    }
    fn complete(&self, job_id: JobId, outcome: &Outcome, now: UnixMillis) -> Result<JobState> {
        let state = self.inner.complete(job_id, outcome, now)?;
        let detail = match outcome {
            Outcome::Delivered { status } => (*status != 0).then(|| format!("status {status:04X}")),
            Outcome::Retry { error, status } | Outcome::Dead { error, status } => {
                Some(status_text(error, *status))
            }
        };
        let what = match (outcome, state) {
            (Outcome::Retry { .. }, JobState::Dead) => "failed, attempts exhausted: dead letter",
            (Outcome::Retry { .. }, _) => "failed, will retry",
            (Outcome::Dead { .. }, _) => "refused: dead letter",
            (Outcome::Delivered { .. }, _) => "delivered",
        };
        self.event(job_id, now, what, detail);
        Ok(state)
    }
    fn recover(&self, now: UnixMillis) -> Result<RecoveryReport> {
        self.inner.recover(now)
    }
    fn release_stale(&self, leased_before: UnixMillis, now: UnixMillis) -> Result<u64> {
        self.inner.release_stale(leased_before, now)
    }
    fn purgeable(
        &self,
        now: UnixMillis,
        retention: Retention,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.inner.purgeable(now, retention, limit)
    }
    fn mark_done(&self, id: &str, now: UnixMillis) -> Result<()> {
        let jobs: Vec<JobId> = self
            .inner
            .instance(id)
            .ok()
            .flatten()
            .map(|d| d.jobs.iter().map(|j| j.id).collect())
            .unwrap_or_default();
        self.inner.mark_done(id, now)?;
        if let Err(e) = self.store.remove(id, &jobs) {
            warn!(id, error = %e, "cannot remove the instance's evidence");
        }
        Ok(())
    }
    fn open_instances(&self) -> Result<Vec<(String, InstanceState)>> {
        self.inner.open_instances()
    }
    fn fail_jobs(&self, id: &str, error: &str, now: UnixMillis) -> Result<usize> {
        self.inner.fail_jobs(id, error, now)
    }
    fn counts(&self) -> Result<Counts> {
        self.inner.counts()
    }
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>> {
        self.inner.list_jobs(filter)
    }
    fn retry_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        self.inner.retry_job(job_id, now)?;
        self.event(job_id, now, "retried by an operator", None);
        Ok(())
    }
    fn retry_dead(&self, destination: Option<&str>, now: UnixMillis) -> Result<usize> {
        let dead: Vec<JobId> = self
            .inner
            .list_jobs(&JobFilter {
                state: Some(JobState::Dead),
                destination: destination.map(String::from),
                limit: BULK_EVENTS,
            })
            .map(|jobs| jobs.iter().map(|j| j.id).collect())
            .unwrap_or_default();
        let n = self.inner.retry_dead(destination, now)?;
        if n > 0 {
            for id in dead {
                self.event(id, now, "retried by an operator (all dead letters)", None);
            }
        }
        Ok(n)
    }
    fn drop_job(&self, job_id: JobId, now: UnixMillis) -> Result<()> {
        self.inner.drop_job(job_id, now)?;
        self.event(job_id, now, "dropped by an operator", None);
        Ok(())
    }
    fn instance(&self, id: &str) -> Result<Option<InstanceDetail>> {
        self.inner.instance(id)
    }
    fn study(&self, study_instance_uid: &str) -> Result<Vec<InstanceDetail>> {
        self.inner.study(study_instance_uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radroute_queue::{RetryPolicy, SqliteQueue};

    #[test]
    fn attempts_are_recorded_and_purge_forgets_the_instance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner: Arc<dyn ForwardQueue> = Arc::new(
            SqliteQueue::open(&dir.path().join("q.sqlite"), RetryPolicy::default()).expect("queue"),
        );
        let store = Arc::new(EvidenceStore::open(&dir.path().join("e.sqlite")).expect("store"));
        let q = EvidenceQueue::new(inner, store.clone());
        let now = UnixMillis::now();
        q.add_instance(&NewInstance {
            id: "i1".into(),
            sop_instance_uid: "1.2.3".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: None,
            calling_ae: "MOD".into(),
            called_ae: "RR".into(),
            peer_addr: "127.0.0.1:1".into(),
            received_at: now,
            bytes: 1,
        })
        .expect("add");
        let evidence = Evidence {
            instance_id: "i1".into(),
            label: Some("HAND".into()),
            ..Default::default()
        };
        record(Some(&store), &evidence, Some(b"png"));
        q.route_instance("i1", Some("HAND"), None, &["a".into()], now)
            .expect("route");
        let job = q.lease("a", 1, now).expect("lease").remove(0);
        let retry = Outcome::Retry {
            error: "refused".into(),
            status: None,
        };
        q.complete(job.id, &retry, now).expect("retry");
        let job = q
            .lease("a", 1, UnixMillis(now.0 + 3_600_000))
            .expect("lease")
            .remove(0);
        q.complete(job.id, &Outcome::Delivered { status: 0 }, now)
            .expect("delivered");
        let events = store.job_events(&[job.id]).expect("events");
        let what: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(what, ["failed, will retry", "delivered"]);
        assert_eq!(events[0].detail.as_deref(), Some("refused"));
        q.mark_done("i1", now).expect("done");
        assert_eq!(store.get("i1").expect("get"), None);
        assert_eq!(store.model_input_png("i1").expect("png"), None);
        assert!(store.job_events(&[job.id]).expect("events").is_empty());
    }
}

//! The records kept per instance and per forward attempt, and the search filter.

use serde::{Deserialize, Serialize};

/// What processing found and decided for one instance. Every text field comes from the
/// instance's header or the configuration: treat it as untrusted when displaying it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Spool id of the instance (the queue's instance id).
    pub instance_id: String,
    /// When processing recorded this, Unix milliseconds.
    pub recorded_at: i64,
    /// Study Instance UID.
    pub study_instance_uid: Option<String>,
    /// Accession Number.
    pub accession: Option<String>,
    /// Study Date (DICOM DA, `YYYYMMDD`).
    pub study_date: Option<String>,
    /// Modality.
    pub modality: Option<String>,
    /// Calling AE title of the association it arrived on.
    pub calling_ae: String,
    /// Patient's Name (patient identifier: shown only to an authenticated user).
    pub patient_name: Option<String>,
    /// Patient ID (patient identifier).
    pub patient_id: Option<String>,
    /// Body Part Examined as received.
    pub body_part_received: Option<String>,
    /// The label written (a Body Part Examined term), `None` when the model abstained or did
    /// not run.
    pub label: Option<String>,
    /// Score per class, in the model's class order (empty when the model did not run).
    pub scores: Vec<(String, f32)>,
    /// Model name and version, when a model ran.
    pub model: Option<String>,
    /// Why it is unlabelled or anything else processing noted.
    pub note: Option<String>,
    /// Names of the routes that matched, in order.
    pub matched: Vec<String>,
    /// Destinations chosen.
    pub destinations: Vec<String>,
    /// Header edits of the matching routes, as text (`(0008,0080) = "X"`, `remove (0010,1000)`).
    pub edits: Vec<String>,
    /// The route that dropped it, if one did.
    pub dropped_by: Option<String>,
    /// True when the destinations are the fallback (no route sent it anywhere).
    pub used_fallback: bool,
    /// Study-scope routes it waits for (held until its study is stable).
    pub held_for: Vec<String>,
}

/// One forward attempt of a job (or an operator action on it). Keyed by the queue's job id
/// (the instance page lists its jobs, each with its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Queue job id.
    pub job_id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// `delivered`, `retry`, `dead`, `retried by operator`, `dropped by operator`, ...
    pub outcome: String,
    /// The error or DIMSE status, if any.
    pub detail: Option<String>,
}

/// Search filter: every field given must match (text fields exactly, ignoring case and
/// surrounding blanks). Newest first, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// Accession Number.
    pub accession: Option<String>,
    /// Study Date, `YYYYMMDD` (dashes are ignored: `2026-12-07` works too).
    pub study_date: Option<String>,
    /// Modality.
    pub modality: Option<String>,
    /// Calling AE title.
    pub calling_ae: Option<String>,
    /// Label; `none` matches unlabelled instances.
    pub label: Option<String>,
    /// Study Instance UID.
    pub study_instance_uid: Option<String>,
    /// Most rows returned.
    pub limit: usize,
}

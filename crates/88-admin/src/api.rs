//! `/api/v1`: the REST API over the forward queue, and its JSON shapes (DTOs).
//!
//! Errors are `{"error": "..."}` with 400 (bad parameter), 401 (token), 404 (unknown job,
//! instance, study or endpoint), 409 (job in the wrong state, or its files purged), 500 (database error).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use radroute_queue::{
    Counts, InstanceDetail, JobCounts, JobFilter, JobId, JobState, JobView, QueueError, UnixMillis,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::operator::Operator;
use super::AdminState;
use radroute_audit::OperatorActionKind;

/// Default and largest `limit` of `GET /api/v1/jobs`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        let status = match &e {
            QueueError::UnknownJob { .. } | QueueError::UnknownInstance { .. } => {
                StatusCode::NOT_FOUND
            }
            QueueError::JobState { .. }
            | QueueError::InstanceState { .. }
            | QueueError::FilesPurged { .. } => StatusCode::CONFLICT,
            QueueError::DuplicateInstance { .. } => StatusCode::CONFLICT,
            _ => {
                warn!(error = %e, "admin API: queue error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// An action's outcome for the audit trail: `ok` on success, the error's message otherwise.
fn outcome<T>(done: &Result<T, ApiError>, ok: impl FnOnce() -> String) -> Result<String, String> {
    match done {
        Ok(_) => Ok(ok()),
        Err(e) => Err(e.message.clone()),
    }
}

/// Runs a queue call on the blocking pool.
async fn blocking<T, F>(state: &AdminState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn radroute_queue::ForwardQueue) -> Result<T, ApiError> + Send + 'static,
{
    let queue = state.queue.clone();
    tokio::task::spawn_blocking(move || f(queue.as_ref()))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("queue task failed: {e}"),
            )
        })?
}

/// RFC 3339 UTC with milliseconds.
fn rfc3339(t: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.0.to_string())
}

/// A job (one instance to one destination).
#[derive(Debug, Serialize)]
pub struct JobDto {
    /// Job id.
    pub id: JobId,
    /// Spool id of its instance.
    pub instance_id: String,
    /// Destination name.
    pub destination: String,
    /// `queued`, `in_flight`, `delivered` or `dead`.
    pub state: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due (meaningful while queued), RFC 3339.
    pub next_attempt_at: String,
    /// Last error, if an attempt failed.
    pub last_error: Option<String>,
    /// Last DICOM status received, as 4 hex digits (`"A700"`).
    pub last_status: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Study Instance UID.
    pub study_instance_uid: Option<String>,
}

impl From<&JobView> for JobDto {
    fn from(j: &JobView) -> JobDto {
        JobDto {
            id: j.id,
            instance_id: j.instance_id.clone(),
            destination: j.destination.clone(),
            state: j.state.as_str(),
            attempts: j.attempts,
            next_attempt_at: rfc3339(j.next_attempt_at),
            last_error: j.last_error.clone(),
            last_status: j.last_status.map(|s| format!("{s:04X}")),
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at),
            sop_instance_uid: j.sop_instance_uid.clone(),
            study_instance_uid: j.study_instance_uid.clone(),
        }
    }
}

/// An instance with its jobs.
#[derive(Debug, Serialize)]
pub struct InstanceDto {
    /// Spool id.
    pub id: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer syntax of the spooled file.
    pub transfer_syntax: String,
    /// Study Instance UID.
    pub study_instance_uid: Option<String>,
    /// Sender's AE title.
    pub calling_ae: String,
    /// AE title the sender called.
    pub called_ae: String,
    /// Sender's address.
    pub peer_addr: String,
    /// Reception time, RFC 3339.
    pub received_at: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
    /// `received`, `routed` or `done`.
    pub state: &'static str,
    /// Body-part label written by processing; `null` when the model abstained or did not run.
    pub label: Option<String>,
    /// Why processing left it unlabelled or routed nowhere.
    pub note: Option<String>,
    /// Size of the spooled file.
    pub bytes: u64,
    /// State of its job for each destination.
    pub destinations: BTreeMap<String, &'static str>,
    /// Its jobs.
    pub jobs: Vec<JobDto>,
}

impl From<&InstanceDetail> for InstanceDto {
    fn from(d: &InstanceDetail) -> InstanceDto {
        let i = &d.instance;
        InstanceDto {
            id: i.id.clone(),
            sop_instance_uid: i.sop_instance_uid.clone(),
            sop_class_uid: i.sop_class_uid.clone(),
            transfer_syntax: i.transfer_syntax.clone(),
            study_instance_uid: i.study_instance_uid.clone(),
            calling_ae: i.calling_ae.clone(),
            called_ae: i.called_ae.clone(),
            peer_addr: i.peer_addr.clone(),
            received_at: rfc3339(i.received_at),
            updated_at: rfc3339(i.updated_at),
            state: i.state.as_str(),
            label: i.label.clone(),
            note: i.processing_note.clone(),
            bytes: i.bytes,
            destinations: d
                .jobs
                .iter()
                .map(|j| (j.destination.clone(), j.state.as_str()))
                .collect(),
            jobs: d.jobs.iter().map(JobDto::from).collect(),
        }
    }
}

/// Jobs by state.
#[derive(Debug, Serialize)]
pub struct JobCountsDto {
    /// Waiting.
    pub queued: u64,
    /// Leased by a forward worker.
    pub in_flight: u64,
    /// Delivered.
    pub delivered: u64,
    /// Dead letters.
    pub dead: u64,
}

impl From<&JobCounts> for JobCountsDto {
    fn from(c: &JobCounts) -> JobCountsDto {
        JobCountsDto {
            queued: c.queued,
            in_flight: c.in_flight,
            delivered: c.delivered,
            dead: c.dead,
        }
    }
}

/// Instances by state.
#[derive(Debug, Serialize)]
pub struct InstanceCountsDto {
    /// Awaiting processing.
    pub received: u64,
    /// With jobs.
    pub routed: u64,
    /// Finished.
    pub done: u64,
}

/// `GET /api/v1/jobs/counts`: the same shape as `radroute queue counts --json`.
#[derive(Debug, Serialize)]
pub struct CountsDto {
    /// Instances by state.
    pub instances: InstanceCountsDto,
    /// Jobs by state, all destinations.
    pub jobs: JobCountsDto,
    /// Jobs by state for each destination that has jobs.
    pub destinations: BTreeMap<String, JobCountsDto>,
}

impl From<&Counts> for CountsDto {
    fn from(c: &Counts) -> CountsDto {
        CountsDto {
            instances: InstanceCountsDto {
                received: c.instances.received,
                routed: c.instances.routed,
                done: c.instances.done,
            },
            jobs: JobCountsDto::from(&c.jobs),
            destinations: c
                .per_destination
                .iter()
                .map(|(d, j)| (d.clone(), JobCountsDto::from(j)))
                .collect(),
        }
    }
}

/// Answer of the retry and drop endpoints.
#[derive(Debug, Serialize)]
pub struct JobActionDto {
    /// The job.
    pub id: JobId,
    /// Its state after the action.
    pub state: &'static str,
}

/// Answer of `POST /api/v1/jobs/retry-dead`.
#[derive(Debug, Serialize)]
pub struct RetryDeadDto {
    /// Dead jobs queued again.
    pub retried: usize,
    /// The destination filter, if one was given.
    pub destination: Option<String>,
}

/// `GET /api/v1/studies/{uid}`.
#[derive(Debug, Serialize)]
pub struct StudyDto {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Its instances by reception time, with their jobs.
    pub instances: Vec<InstanceDto>,
}

/// Query of `GET /api/v1/jobs` (all text, parsed here so errors are JSON).
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    destination: Option<String>,
    limit: Option<String>,
}

/// Query of `POST /api/v1/jobs/retry-dead`.
#[derive(Debug, Default, Deserialize)]
pub struct DestinationQuery {
    destination: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn parse_job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("job id {text:?} is not a positive integer")))
}

/// `GET /api/v1/jobs?state=&destination=&limit=`: newest first.
pub async fn list_jobs(
    State(state): State<AdminState>,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Vec<JobDto>> {
    let job_state = non_empty(q.state)
        .map(|s| {
            s.parse::<JobState>().map_err(|_| {
                ApiError::bad_request(format!(
                    "state {s:?} is not one of queued, in_flight, delivered, dead"
                ))
            })
        })
        .transpose()?;
    let limit = match non_empty(q.limit) {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit {text:?} is not an integer in 1..={MAX_LIMIT}"
                ))
            })?,
    };
    let filter = JobFilter {
        state: job_state,
        destination: non_empty(q.destination),
        limit,
    };
    let jobs = blocking(&state, move |queue| Ok(queue.list_jobs(&filter)?)).await?;
    Ok(Json(jobs.iter().map(JobDto::from).collect()))
}

/// `GET /api/v1/jobs/counts`.
pub async fn counts(State(state): State<AdminState>) -> ApiResult<CountsDto> {
    let counts = blocking(&state, |queue| Ok(queue.counts()?)).await?;
    Ok(Json(CountsDto::from(&counts)))
}

/// `POST /api/v1/jobs/{id}/retry`: a dead (or queued) job is due now, attempts reset; 409 once
/// its instance's files were purged (dead-letter retention over).
pub async fn retry_job(
    State(state): State<AdminState>,
    operator: Operator,
    Path(id): Path<String>,
) -> ApiResult<JobActionDto> {
    let id = parse_job_id(&id)?;
    let done = blocking(&state, move |queue| {
        Ok(queue.retry_job(id, UnixMillis::now())?)
    })
    .await;
    operator.record(
        &state,
        OperatorActionKind::RetryJob,
        format!("job/{id}"),
        outcome(&done, || "requeued".into()),
    );
    done?;
    info!(job = id, "admin API: job retried");
    Ok(Json(JobActionDto {
        id,
        state: JobState::Queued.as_str(),
    }))
}

/// `POST /api/v1/jobs/{id}/drop`: the job becomes a dead letter ("dropped by operator").
pub async fn drop_job(
    State(state): State<AdminState>,
    operator: Operator,
    Path(id): Path<String>,
) -> ApiResult<JobActionDto> {
    let id = parse_job_id(&id)?;
    let done = blocking(&state, move |queue| {
        Ok(queue.drop_job(id, UnixMillis::now())?)
    })
    .await;
    operator.record(
        &state,
        OperatorActionKind::DropJob,
        format!("job/{id}"),
        outcome(&done, || "dropped (dead letter)".into()),
    );
    done?;
    info!(job = id, "admin API: job dropped");
    Ok(Json(JobActionDto {
        id,
        state: JobState::Dead.as_str(),
    }))
}

/// `POST /api/v1/jobs/retry-dead?destination=`: every dead letter (of one destination) whose
/// files are still in the spool.
pub async fn retry_dead(
    State(state): State<AdminState>,
    operator: Operator,
    Query(q): Query<DestinationQuery>,
) -> ApiResult<RetryDeadDto> {
    let destination = non_empty(q.destination);
    let dest = destination.clone();
    let done = blocking(&state, move |queue| {
        Ok(queue.retry_dead(dest.as_deref(), UnixMillis::now())?)
    })
    .await;
    let target = match &destination {
        Some(d) => format!("destination/{d}"),
        None => "dead-letters".into(),
    };
    operator.record(
        &state,
        OperatorActionKind::RetryDead,
        target,
        outcome(&done, || match &done {
            Ok(n) => format!("{n} dead letters requeued"),
            Err(_) => String::new(),
        }),
    );
    let retried = done?;
    info!(retried, destination = ?destination, "admin API: dead letters retried");
    Ok(Json(RetryDeadDto {
        retried,
        destination,
    }))
}

/// `GET /api/v1/instances/{id}`.
pub async fn instance(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> ApiResult<InstanceDto> {
    let key = id.clone();
    let detail = blocking(&state, move |queue| Ok(queue.instance(&key)?)).await?;
    match detail {
        Some(d) => Ok(Json(InstanceDto::from(&d))),
        None => Err(ApiError::not_found(format!("no instance {id:?}"))),
    }
}

/// `GET /api/v1/studies/{study_instance_uid}`.
pub async fn study(
    State(state): State<AdminState>,
    Path(uid): Path<String>,
) -> ApiResult<StudyDto> {
    let key = uid.clone();
    let instances = blocking(&state, move |queue| Ok(queue.study(&key)?)).await?;
    if instances.is_empty() {
        return Err(ApiError::not_found(format!("no instance of study {uid:?}")));
    }
    Ok(Json(StudyDto {
        study_instance_uid: uid,
        instances: instances.iter().map(InstanceDto::from).collect(),
    }))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see /api/v1/openapi.yaml)")
}

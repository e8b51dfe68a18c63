//! Queue: dead letters, grouped by destination and error, with retry and drop one at a time or
//! for a whole group (by destination, by error). Filters are query strings.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use radroute_queue::{JobFilter, JobId, JobState, JobView, UnixMillis};
use serde::Deserialize;

use super::given;
use crate::auth::{urlencode, Operator};
use crate::layout;
use crate::source::{OperatorAction, OperatorActionKind};
use crate::ConsoleState;

/// Dead letters read per page (and per bulk action).
const DEAD_SCAN: usize = 10_000;
/// Rows listed one by one.
const LISTED: usize = 200;

/// Query of `GET /queue` and form of the bulk actions: destination and error (exact text).
#[derive(Debug, Default, Deserialize)]
pub struct DeadFilter {
    destination: Option<String>,
    error: Option<String>,
}

fn dead_letters(state: &ConsoleState, f: &DeadFilter) -> Result<Vec<JobView>, String> {
    let jobs = state
        .queue
        .list_jobs(&JobFilter {
            state: Some(JobState::Dead),
            destination: given(&f.destination),
            limit: DEAD_SCAN,
        })
        .map_err(|e| e.to_string())?;
    let error = given(&f.error);
    Ok(jobs
        .into_iter()
        .filter(|j| error.is_none() || j.last_error.as_deref().map(str::trim) == error.as_deref())
        .collect())
}

/// `GET /queue?destination=&error=`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
    Query(f): Query<DeadFilter>,
) -> Response {
    let filter = DeadFilter {
        destination: given(&f.destination),
        error: given(&f.error),
    };
    let data = layout::blocking(&state, move |s| dead_letters(s, &filter)).await;
    let jobs = match data {
        Ok(j) => j,
        Err(r) => return r,
    };
    let url = super::self_url(&uri);
    let fixed = html! { div #action-result.result {} };
    layout::page(
        "Queue: dead letters",
        &url,
        &operator,
        fixed,
        live(&f, &jobs),
    )
    .into_response()
}

fn bulk_buttons(destination: &str, error: &str, n: usize) -> Markup {
    let vals = format!(
        r#"{{"destination": {}, "error": {}}}"#,
        json_string(destination),
        json_string(error)
    );
    html! {
        button.primary hx-post="/queue/bulk/retry" hx-vals=(vals) hx-target="#action-result" { "Retry " (n) }
        " "
        button.danger hx-post="/queue/bulk/drop" hx-vals=(vals) hx-target="#action-result"
            hx-confirm=(format!("Drop {n} dead letters for good?")) { "Drop " (n) }
    }
}

/// A JSON string literal (for `hx-vals`; maud escapes it again as an attribute).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn live(f: &DeadFilter, jobs: &[JobView]) -> Markup {
    let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut per_dest: BTreeMap<String, usize> = BTreeMap::new();
    for j in jobs {
        let err = j.last_error.clone().unwrap_or_default().trim().to_string();
        *groups.entry((j.destination.clone(), err)).or_default() += 1;
        *per_dest.entry(j.destination.clone()).or_default() += 1;
    }
    html! {
        @if given(&f.destination).is_some() || given(&f.error).is_some() {
            p { "Filtered: " @if let Some(d) = given(&f.destination) { "destination " code { (d) } " " } @if let Some(e) = given(&f.error) { "error " code { (e) } " " } a href="/queue" { "show all" } }
        }
        h2 { "By destination" }
        table #dead-by-destination {
            tr { th { "Destination" } th.num { "Dead letters" } th { "" } }
            @for (dest, n) in &per_dest {
                tr { td { a href=(format!("/queue?destination={}", urlencode(dest))) { (dest) } } td.num { (n) } td { (bulk_buttons(dest, "", *n)) } }
            }
            @if per_dest.is_empty() { tr { td.muted colspan="3" { "no dead letters" } } }
        }
        h2 { "By error" }
        table #dead-by-error {
            tr { th { "Destination" } th { "Error" } th.num { "Jobs" } th { "" } }
            @for ((dest, err), n) in &groups {
                tr {
                    td { (dest) }
                    td { a href=(format!("/queue?destination={}&error={}", urlencode(dest), urlencode(err))) { (err) } }
                    td.num { (n) }
                    td { (bulk_buttons(dest, err, *n)) }
                }
            }
        }
        h2 { "Dead letters" @if jobs.len() > LISTED { " (newest " (LISTED) " of " (jobs.len()) ")" } }
        table #dead-letters {
            tr { th { "Job" } th { "Instance" } th { "Destination" } th.num { "Attempts" } th { "Error" } th { "Since" } th { "" } }
            @for j in jobs.iter().take(LISTED) {
                tr id=(format!("job-{}", j.id)) {
                    td { (j.id) }
                    td { a href=(format!("/instances/{}", urlencode(&j.instance_id))) { code { (j.sop_instance_uid) } } }
                    td { (j.destination) }
                    td.num { (j.attempts) }
                    td { (j.last_error.as_deref().unwrap_or("")) @if let Some(s) = j.last_status { " " code { (format!("{s:04X}")) } } }
                    td { (layout::time(j.updated_at.0)) }
                    td {
                        button hx-post=(format!("/queue/jobs/{}/retry", j.id)) hx-target="#action-result" { "Retry" }
                        " "
                        button.danger hx-post=(format!("/queue/jobs/{}/drop", j.id)) hx-target="#action-result" { "Drop" }
                    }
                }
            }
        }
    }
}

/// Retries or drops one job; `Err` is the message to show.
fn act(state: &ConsoleState, action: &str, id: JobId) -> Result<(), String> {
    let now = UnixMillis::now();
    match action {
        "retry" => state.queue.retry_job(id, now),
        "drop" => state.queue.drop_job(id, now),
        _ => return Err(format!("unknown action {action:?}")),
    }
    .map_err(|e| e.to_string())
}

/// `POST /queue/jobs/{id}/{retry|drop}`.
pub async fn one(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    Path((id, action)): Path<(JobId, String)>,
) -> Response {
    if action != "retry" && action != "drop" {
        return layout::error(StatusCode::NOT_FOUND, "unknown action");
    }
    let result = layout::blocking(&state, move |s| {
        let r = act(s, &action, id).map(|_| format!("job {id}: {action} done"));
        let kind = if action == "retry" {
            OperatorActionKind::RetryJob
        } else {
            OperatorActionKind::DropJob
        };
        s.node.record_action(OperatorAction::now(
            operator.who.clone(),
            None,
            kind,
            format!("job/{id}"),
            r.clone(),
        ));
        Ok(r)
    })
    .await;
    match result {
        Ok(Ok(text)) => layout::notice(true, text).into_response(),
        Ok(Err(e)) => (StatusCode::CONFLICT, layout::notice(false, e)).into_response(),
        Err(r) => r,
    }
}

/// `POST /queue/bulk/{retry|drop}` with `destination` and `error` (form): every matching
/// dead letter, one by one (a purged one is reported, the rest go on).
pub async fn bulk(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    Path(action): Path<String>,
    Form(f): Form<DeadFilter>,
) -> Response {
    if action != "retry" && action != "drop" {
        return layout::error(StatusCode::NOT_FOUND, "unknown action");
    }
    let verb = action.clone();
    let result = layout::blocking(&state, move |s| {
        let jobs = dead_letters(s, &f)?;
        let (mut done, mut failed) = (0usize, Vec::new());
        for j in &jobs {
            match act(s, &action, j.id) {
                Ok(()) => done += 1,
                Err(e) => failed.push(format!("job {}: {e}", j.id)),
            }
        }
        let scope = format!(
            "{}{}",
            given(&f.destination)
                .map(|d| format!(" destination {d}"))
                .unwrap_or_default(),
            given(&f.error)
                .map(|e| format!(" error \"{e}\""))
                .unwrap_or_default()
        );
        let kind = if action == "retry" {
            OperatorActionKind::RetryDead
        } else {
            OperatorActionKind::DropJob
        };
        let detail = format!("{action}: {done} dead letters, {} failed", failed.len());
        s.node.record_action(OperatorAction::now(
            operator.who.clone(),
            None,
            kind,
            format!("dead-letters{scope}"),
            if failed.is_empty() {
                Ok(detail)
            } else {
                Err(detail)
            },
        ));
        Ok((done, failed))
    })
    .await;
    match result {
        Ok((done, failed)) => html! {
            (layout::notice(failed.is_empty(), format!("{verb}: {done} done, {} failed", failed.len())))
            @for f in failed.iter().take(20) { br; small.bad { (f) } }
        }
        .into_response(),
        Err(r) => r,
    }
}

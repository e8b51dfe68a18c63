//! Destinations: per destination its jobs by state, last success, last error (DNS failure,
//! refused, timeout, DIMSE status told apart), a C-ECHO button, and a flag on one that has
//! never been reached.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use radroute_queue::{JobCounts, JobFilter, JobState, JobView};

use crate::auth::Operator;
use crate::history::EchoResult;
use crate::layout::{self, ago, now_ms};
use crate::source::{DestinationInfo, OperatorAction, OperatorActionKind};
use crate::ConsoleState;

/// Recent jobs read to find the last error.
const ERROR_SCAN: usize = 200;

/// What kind of failure an error is, in the words an admin acts on.
pub fn error_kind(error: &str, status: Option<u16>) -> String {
    if let Some(s) = status {
        return format!("DIMSE status {s:04X}");
    }
    let e = error.to_ascii_lowercase();
    let kind = if e.contains("lookup")
        || e.contains("resolve")
        || e.contains("name or service")
        || e.contains("nodename nor servname")
        || e.contains("dns")
    {
        "DNS failure"
    } else if e.contains("refused") {
        "connection refused"
    } else if e.contains("could not connect") {
        // A connect error without its cause (radroute-forward adds it; older job rows lack it).
        "cannot connect"
    } else if e.contains("timed out") || e.contains("timeout") {
        "timeout"
    } else if e.contains("reject") {
        "association rejected"
    } else if e.contains("unreachable") {
        "network unreachable"
    } else if e.contains("tls") || e.contains("certificate") {
        "TLS failure"
    } else {
        "error"
    };
    kind.to_string()
}

struct Row {
    info: DestinationInfo,
    counts: JobCounts,
    last_success: Option<i64>,
    last_error: Option<JobView>,
    echo: Option<EchoResult>,
}

fn read(state: &ConsoleState) -> Result<Vec<Row>, String> {
    let counts = state.queue.counts().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for info in state.node.destinations() {
        let list = |job_state: Option<JobState>, limit: usize| {
            state.queue.list_jobs(&JobFilter {
                state: job_state,
                destination: Some(info.name.clone()),
                limit,
            })
        };
        let last_success = list(Some(JobState::Delivered), 1)
            .map_err(|e| e.to_string())?
            .first()
            .map(|j| j.updated_at.0);
        let last_error = list(None, ERROR_SCAN)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| j.last_error.is_some() && j.state != JobState::Delivered)
            .max_by_key(|j| j.updated_at.0);
        rows.push(Row {
            counts: counts
                .per_destination
                .get(&info.name)
                .cloned()
                .unwrap_or_default(),
            echo: state.history.echo(&info.name),
            info,
            last_success,
            last_error,
        });
    }
    Ok(rows)
}

/// `GET /destinations`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
) -> Response {
    let rows = match layout::blocking(&state, read).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let url = super::self_url(&uri);
    layout::page("Destinations", &url, &operator, html! {}, live(&rows)).into_response()
}

fn echo_text(e: &EchoResult) -> Markup {
    match &e.result {
        Ok(rtt) => layout::notice(
            true,
            format!(
                "C-ECHO ok in {} ms ({})",
                rtt.as_millis(),
                layout::time(e.at)
            ),
        ),
        Err(err) => layout::notice(
            false,
            format!("C-ECHO failed: {} — {err}", error_kind(err, None)),
        ),
    }
}

fn live(rows: &[Row]) -> Markup {
    let now = now_ms();
    html! {
        table #destinations {
            tr { th { "Destination" } th { "Address" } th.num { "Queued" } th.num { "In flight" } th.num { "Delivered" } th.num { "Dead" } th { "Last success" } th { "Last error" } th { "C-ECHO" } }
            @for r in rows {
                @let echo_ok = r.echo.as_ref().is_some_and(|e| e.result.is_ok());
                @let never = r.last_success.is_none() && !echo_ok && r.info.reachable != Some(true);
                tr id=(r.info.name) {
                    td {
                        strong { (r.info.name) }
                        @if never { " " span.flag.bad title="no delivery and no successful C-ECHO since this node started; check host, port and AE title" { "never reached" } }
                        @else if r.info.reachable == Some(false) { " " span.flag.warn { "unreachable now" } }
                    }
                    td { code { (r.info.ae_title) "@" (r.info.address) } }
                    td.num { (r.counts.queued) } td.num { (r.counts.in_flight) } td.num { (r.counts.delivered) }
                    td.num class=(if r.counts.dead > 0 { "bad" } else { "" }) { a href=(format!("/queue?destination={}", crate::auth::urlencode(&r.info.name))) { (r.counts.dead) } }
                    td { @match r.last_success { Some(t) => span.ok title=(layout::time(t)) { (ago(t, now)) }, None => span.muted { "never" } } }
                    td {
                        @if let Some(j) = &r.last_error {
                            @let err = j.last_error.as_deref().unwrap_or("");
                            span.flag.bad { (error_kind(err, j.last_status)) } " "
                            span.muted title=(layout::time(j.updated_at.0)) { (ago(j.updated_at.0, now)) } br;
                            small { (err) }
                        } @else { span.muted { "none" } }
                    }
                    td {
                        button hx-post=(format!("/destinations/{}/echo", crate::auth::urlencode(&r.info.name))) hx-target="next .result" hx-swap="innerHTML" { "C-ECHO now" }
                        div.result { @if let Some(e) = &r.echo { (echo_text(e)) } }
                    }
                }
            }
        }
    }
}

/// `POST /destinations/{name}/echo`: a C-ECHO now; answers the result as a fragment.
pub async fn echo(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    Path(name): Path<String>,
) -> Response {
    if !state.node.destinations().iter().any(|d| d.name == name) {
        return layout::error(StatusCode::NOT_FOUND, format!("no destination {name:?}"));
    }
    let dest = name.clone();
    let outcome = layout::blocking(&state, move |s| {
        let result = s.node.echo(&dest);
        let outcome = match &result {
            Ok(rtt) => Ok(format!("C-ECHO answered in {} ms", rtt.as_millis())),
            Err(e) => Err(format!("C-ECHO failed: {e}")),
        };
        s.node.record_action(OperatorAction::now(
            operator.who.clone(),
            None,
            OperatorActionKind::Echo,
            format!("destination/{dest}"),
            outcome,
        ));
        Ok(result)
    })
    .await;
    let result = match outcome {
        Ok(r) => r,
        Err(r) => return r,
    };
    let e = EchoResult {
        at: now_ms(),
        result,
    };
    state.history.echoed(&name, e.clone());
    echo_text(&e).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        assert_eq!(
            error_kind(
                "failed to lookup address information: Name or service not known",
                None
            ),
            "DNS failure"
        );
        assert_eq!(
            error_kind("Connection refused (os error 111)", None),
            "connection refused"
        );
        assert_eq!(error_kind("anything", Some(0xA700)), "DIMSE status A700");
        assert_eq!(error_kind("connect timed out", None), "timeout");
        assert_eq!(error_kind("something else", None), "error");
        assert_eq!(
            error_kind(
                "association with a (h:1) failed: could not connect to server",
                None
            ),
            "cannot connect"
        );
        assert_eq!(
            error_kind(
                "nowhere.invalid:104 does not resolve: failed to lookup address",
                None
            ),
            "DNS failure"
        );
    }
}

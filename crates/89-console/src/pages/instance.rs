//! One instance: label, scores as a bar chart, the exact model input as an image, the routing
//! decision (rules matched, destinations, edits) and each job with its history.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use radroute_evidence::{Evidence, JobEvent};
use radroute_queue::InstanceDetail;

use crate::auth::{urlencode, Operator};
use crate::layout;
use crate::ConsoleState;

struct Data {
    detail: Option<InstanceDetail>,
    evidence: Option<Evidence>,
    events: Vec<JobEvent>,
}

/// `GET /instances/{id}`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let key = id.clone();
    let data = layout::blocking(&state, move |s| {
        let detail = s.queue.instance(&key).map_err(|e| e.to_string())?;
        let job_ids: Vec<i64> = detail
            .iter()
            .flat_map(|d| d.jobs.iter().map(|j| j.id))
            .collect();
        let (evidence, events) = match &s.evidence {
            Some(ev) => (
                ev.get(&key).map_err(|e| e.to_string())?,
                ev.job_events(&job_ids).map_err(|e| e.to_string())?,
            ),
            None => (None, Vec::new()),
        };
        Ok(Data {
            detail,
            evidence,
            events,
        })
    })
    .await;
    let data = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    if data.detail.is_none() && data.evidence.is_none() {
        return layout::error(
            StatusCode::NOT_FOUND,
            format!("no instance {id:?} (purged or never received)"),
        );
    }
    let url = super::self_url(&uri);
    let fixed = evidence_view(&id, data.evidence.as_ref());
    layout::page("Instance", &url, &operator, fixed, live(&data)).into_response()
}

/// Scores as horizontal bars, the top class highlighted.
pub fn score_bars(scores: &[(String, f32)]) -> Markup {
    let top = scores.iter().map(|(_, s)| *s).fold(f32::MIN, f32::max);
    html! {
        div.bars #scores {
            @for (class, score) in scores {
                @let pct = (score.clamp(0.0, 1.0) * 100.0).round();
                span { (class) }
                div class=(if *score == top { "bar top" } else { "bar" }) { span style=(format!("width:{pct}%")) {} }
                span.num { (format!("{score:.3}")) }
            }
        }
    }
}

/// The decision part of evidence (shared with the rule tester).
pub fn decision(e: &Evidence) -> Markup {
    html! {
        dl.facts #decision {
            dt { "Label" } dd.label { @match &e.label { Some(l) => strong { (l) }, None => span.muted { "none (abstained or not classified)" } } }
            @if let Some(m) = &e.model { dt { "Model" } dd { (m) } }
            @if let Some(n) = &e.note { dt { "Note" } dd { (n) } }
            dt { "Rules matched" } dd.matched { @if e.matched.is_empty() { span.muted { "none" } } @else { (e.matched.join(", ")) } }
            dt { "Destinations" } dd.destinations {
                @if let Some(r) = &e.dropped_by { span.bad { "dropped by " (r) } }
                @else if e.destinations.is_empty() { span.muted { "none" } }
                @else { (e.destinations.join(", ")) @if e.used_fallback { " " span.flag.warn { "fallback" } } }
            }
            dt { "Edits" } dd { @if e.edits.is_empty() { span.muted { "none" } } @else { @for ed in &e.edits { code { (ed) } br; } } }
            @if !e.held_for.is_empty() { dt { "Held for study" } dd { (e.held_for.join(", ")) } }
        }
    }
}

fn evidence_view(id: &str, e: Option<&Evidence>) -> Markup {
    let Some(e) = e else {
        return html! { p.muted { "Not processed yet: no label, scores or decision recorded." } };
    };
    html! {
        div.split {
            div {
                h2 { "Decision" }
                (decision(e))
                h2 { "Header" }
                dl.facts {
                    dt { "Patient" } dd { (e.patient_name.as_deref().unwrap_or("")) " " span.muted { (e.patient_id.as_deref().unwrap_or("")) } }
                    dt { "Accession" } dd { (e.accession.as_deref().unwrap_or("")) }
                    dt { "Study date" } dd { (e.study_date.as_deref().unwrap_or("")) }
                    dt { "Modality" } dd { (e.modality.as_deref().unwrap_or("")) }
                    dt { "Body Part received" } dd { (e.body_part_received.as_deref().unwrap_or("(empty)")) }
                    dt { "Calling AE" } dd { (e.calling_ae) }
                    @if let Some(uid) = &e.study_instance_uid { dt { "Study" } dd { a href=(format!("/studies/{}", urlencode(uid))) { code { (uid) } } } }
                }
            }
            div {
                h2 { "Model input" }
                @if e.scores.is_empty() { p.muted { "The model did not run." } }
                @else {
                    img.model-input alt="model input" src=(format!("/instances/{}/model-input.png", urlencode(id)));
                    h2 { "Scores" }
                    (score_bars(&e.scores))
                }
            }
        }
    }
}

fn live(d: &Data) -> Markup {
    html! {
        @if let Some(detail) = &d.detail {
            @let i = &detail.instance;
            h2 { "State" }
            dl.facts {
                dt { "State" } dd #instance-state { (i.state.as_str()) }
                dt { "SOP Instance UID" } dd { code { (i.sop_instance_uid) } }
                dt { "Received" } dd { (layout::time(i.received_at.0)) " from " (i.calling_ae) " (" (i.peer_addr) ")" }
                dt { "Size" } dd { (layout::bytes(i.bytes)) }
                @if let Some(n) = &i.processing_note { dt { "Processing note" } dd { (n) } }
            }
            h2 { "Jobs" }
            table #jobs {
                tr { th { "Destination" } th { "State" } th.num { "Attempts" } th { "Last error" } th { "History" } }
                @for j in &detail.jobs {
                    tr {
                        td { (j.destination) }
                        td class=(if j.state.as_str() == "dead" { "bad" } else { "" }) { (j.state.as_str()) }
                        td.num { (j.attempts) }
                        td { (j.last_error.as_deref().unwrap_or("")) @if let Some(s) = j.last_status { " " code { (format!("{s:04X}")) } } }
                        td {
                            @for ev in d.events.iter().filter(|ev| ev.job_id == j.id) {
                                div { span.muted { (layout::time(ev.at)) } " " (ev.outcome) @if let Some(det) = &ev.detail { " — " small { (det) } } }
                            }
                            div.muted { "created " (layout::time(j.created_at.0)) }
                        }
                    }
                }
                @if detail.jobs.is_empty() { tr { td.muted colspan="5" { "no jobs" } } }
            }
        } @else {
            p.muted { "The queue no longer has this instance (purged)." }
        }
    }
}

/// `GET /instances/{id}/model-input.png`: the model's input as recorded at processing time.
pub async fn model_input(State(state): State<ConsoleState>, Path(id): Path<String>) -> Response {
    let png = layout::blocking(&state, move |s| match &s.evidence {
        Some(ev) => ev.model_input_png(&id).map_err(|e| e.to_string()),
        None => Ok(None),
    })
    .await;
    match png {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no model input recorded\n").into_response(),
        Err(r) => r,
    }
}

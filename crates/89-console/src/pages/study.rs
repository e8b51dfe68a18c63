//! One study: its study-level label (the same vote as study-scope routing,
//! radroute-route's `Study::body_part`), whether it is still held, and its instances.

use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use radroute_evidence::{Evidence, Search};
use radroute_queue::{InstanceDetail, InstanceState};
use radroute_route::{InstanceLabel, StudyLabel, StudyTracker};

use crate::auth::Operator;
use crate::layout;
use crate::ConsoleState;

/// The study label from the instances' labels and top scores.
fn study_label(uid: &str, evidence: &[Evidence]) -> Option<StudyLabel> {
    let mut tracker = StudyTracker::new(Duration::ZERO);
    let now = Instant::now();
    for e in evidence {
        let confidence = e.scores.iter().map(|(_, s)| *s).reduce(f32::max);
        let instance = InstanceLabel {
            sop_instance_uid: e.instance_id.clone(),
            label: e.label.clone(),
            confidence: e.label.as_ref().and(confidence),
        };
        tracker.observe(uid, instance, &[], now);
    }
    tracker.get(uid).map(|s| s.body_part())
}

/// `GET /studies/{uid}`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
    Path(uid): Path<String>,
) -> Response {
    let key = uid.clone();
    let data = layout::blocking(&state, move |s| {
        let instances: Vec<InstanceDetail> = s.queue.study(&key).map_err(|e| e.to_string())?;
        let evidence = match &s.evidence {
            Some(ev) => ev
                .search(&Search {
                    study_instance_uid: Some(key.clone()),
                    limit: 1000,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        Ok((instances, evidence))
    })
    .await;
    let (instances, evidence) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    if instances.is_empty() && evidence.is_empty() {
        return layout::error(
            StatusCode::NOT_FOUND,
            format!("no instance of study {uid:?}"),
        );
    }
    let held = evidence.iter().filter(|e| !e.held_for.is_empty()).any(|e| {
        instances
            .iter()
            .any(|d| d.instance.id == e.instance_id && d.instance.state == InstanceState::Received)
    });
    let label = study_label(&uid, &evidence);
    let url = super::self_url(&uri);
    let live = html! {
        dl.facts {
            dt { "Study Instance UID" } dd { code { (uid) } }
            dt { "Study label" } dd #study-label {
                @match label.as_ref().and_then(|l| l.label.clone()) {
                    Some(l) => { strong { (l) } " " span.muted { (format!("confidence {:.3}", label.as_ref().and_then(|l| l.confidence).unwrap_or(0.0))) } },
                    None => span.muted { "none (no labelled instance, or a tie)" },
                }
            }
            dt { "Held" } dd #study-held {
                @if held { span.flag.warn { "held" } " waiting until the study is stable" } @else { "no" }
            }
            dt { "Instances" } dd { (instances.len()) " in the queue, " (evidence.len()) " processed" }
        }
        h2 { "Instances" }
        (super::instances::table(&evidence))
    };
    layout::page("Study", &url, &operator, html! {}, live).into_response()
}

//! Rules: the active routing configuration as written, and the rule tester (a received
//! instance, picked by link, or an uploaded file): the decision the current rules make,
//! without sending, storing or queueing anything.

use axum::extract::{Multipart, OriginalUri, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use radroute_evidence::{Evidence, Search};
use serde::Deserialize;

use super::given;
use crate::auth::Operator;
use crate::layout;
use crate::source::RuleTestInput;
use crate::ConsoleState;

/// Largest upload the tester takes.
pub const MAX_UPLOAD: usize = 64 << 20;
/// Instances offered in the picker.
const PICK: usize = 50;

/// Query of `GET /rules`.
#[derive(Debug, Default, Deserialize)]
pub struct RulesQuery {
    instance: Option<String>,
}

fn result(outcome: &Result<Evidence, String>) -> Markup {
    match outcome {
        Ok(e) => html! {
            div #rule-test-result {
                p.ok { "Decision of the current rules (nothing was sent):" }
                (super::instance::decision(e))
                @if !e.scores.is_empty() { h2 { "Scores" } (super::instance::score_bars(&e.scores)) }
            }
        },
        Err(err) => html! { div #rule-test-result { p.bad { "Cannot test: " (err) } } },
    }
}

/// `GET /rules?instance=`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
    Query(q): Query<RulesQuery>,
) -> Response {
    let picked = given(&q.instance);
    let p = picked.clone();
    let data = layout::blocking(&state, move |s| {
        let recent = match &s.evidence {
            Some(ev) => ev
                .search(&Search {
                    limit: PICK,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let tested = p.map(|id| s.node.test_rules(RuleTestInput::Instance(id)));
        Ok((s.node.rules_text(), recent, tested))
    })
    .await;
    let (rules, recent, tested) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let url = super::self_url(&uri);
    let fixed = html! {
        div.split {
            div {
                h2 { "Active rules" }
                pre #rules-text { (rules) }
            }
            div {
                h2 { "Rule tester" }
                form.search method="get" action="/rules" {
                    label { "Received instance"
                        select name="instance" {
                            @for e in &recent {
                                option value=(e.instance_id) selected[picked.as_deref() == Some(e.instance_id.as_str())] {
                                    (layout::time(e.recorded_at)) " · " (e.modality.as_deref().unwrap_or("?")) " · "
                                    (e.label.as_deref().unwrap_or("none")) " · " (e.calling_ae)
                                }
                            }
                        }
                    }
                    button.primary type="submit" { "Test" }
                }
                form.search hx-post="/rules/test" hx-encoding="multipart/form-data" hx-target="#upload-result" {
                    label { "or a DICOM file" input type="file" name="file"; }
                    button type="submit" { "Test file" }
                }
                @if let Some(t) = &tested { (result(t)) }
                div #upload-result {}
            }
        }
    };
    layout::page("Rules", &url, &operator, fixed, html! {}).into_response()
}

/// `POST /rules/test` (multipart, field `file`): the decision for an uploaded file.
pub async fn test_upload(State(state): State<ConsoleState>, mut form: Multipart) -> Response {
    let mut bytes = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => match field.bytes().await {
                Ok(b) if b.len() <= MAX_UPLOAD => bytes = Some(b.to_vec()),
                Ok(_) => return layout::error(StatusCode::PAYLOAD_TOO_LARGE, "file too large"),
                Err(e) => return layout::error(StatusCode::BAD_REQUEST, e),
            },
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => return layout::error(StatusCode::BAD_REQUEST, e),
        }
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return result(&Err("no file given".into())).into_response();
    };
    match layout::blocking(&state, move |s| {
        Ok(s.node.test_rules(RuleTestInput::File(bytes)))
    })
    .await
    {
        Ok(outcome) => result(&outcome).into_response(),
        Err(r) => r,
    }
}

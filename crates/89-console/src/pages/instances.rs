//! Instances: search by accession, study date, modality, calling AE and label (a GET form, so
//! every search is a link), newest first.

use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use radroute_evidence::{Evidence, Search};
use serde::Deserialize;

use super::given;
use crate::auth::{urlencode, Operator};
use crate::layout;
use crate::ConsoleState;

/// Rows shown per search.
const ROWS: usize = 200;

/// Query of `GET /instances`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    accession: Option<String>,
    study_date: Option<String>,
    modality: Option<String>,
    calling_ae: Option<String>,
    label: Option<String>,
}

impl SearchQuery {
    fn search(&self) -> Search {
        Search {
            accession: given(&self.accession),
            study_date: given(&self.study_date),
            modality: given(&self.modality),
            calling_ae: given(&self.calling_ae),
            label: given(&self.label),
            study_instance_uid: None,
            limit: ROWS,
        }
    }
}

/// `GET /instances?accession=&study_date=&modality=&calling_ae=&label=`.
pub async fn search(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
    Query(q): Query<SearchQuery>,
) -> Response {
    let filter = q.search();
    let rows = match layout::blocking(&state, move |s| match &s.evidence {
        Some(ev) => ev.search(&filter).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    })
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let url = super::self_url(&uri);
    layout::page("Instances", &url, &operator, form(&q), table(&rows)).into_response()
}

fn form(q: &SearchQuery) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form.search method="get" action="/instances" {
            label { "Accession" input name="accession" value=(v(&q.accession)); }
            label { "Study date" input name="study_date" placeholder="YYYYMMDD" value=(v(&q.study_date)); }
            label { "Modality" input name="modality" size="4" value=(v(&q.modality)); }
            label { "Calling AE" input name="calling_ae" value=(v(&q.calling_ae)); }
            label { "Label" input name="label" placeholder="HAND, none" value=(v(&q.label)); }
            button.primary type="submit" { "Search" }
            a href="/instances" { "clear" }
        }
    }
}

/// The search result table (also used by the study page).
pub fn table(rows: &[Evidence]) -> Markup {
    html! {
        table #instances {
            tr { th { "Processed" } th { "Patient" } th { "Accession" } th { "Study date" } th { "Modality" } th { "Calling AE" } th { "Label" } th { "Destinations" } }
            @for e in rows {
                tr {
                    td { a href=(format!("/instances/{}", urlencode(&e.instance_id))) { (layout::time(e.recorded_at)) } }
                    td { (e.patient_name.as_deref().unwrap_or("")) }
                    td { (e.accession.as_deref().unwrap_or("")) }
                    td { (e.study_date.as_deref().unwrap_or("")) }
                    td { (e.modality.as_deref().unwrap_or("")) }
                    td { (e.calling_ae) }
                    td.label { @match &e.label { Some(l) => strong { (l) }, None => span.muted { "none" } } }
                    td { (e.destinations.join(", ")) @if e.dropped_by.is_some() { span.muted { "dropped" } } @if !e.held_for.is_empty() { span.flag.warn { "held for study" } } }
                }
            }
            @if rows.is_empty() { tr { td.muted colspan="8" { "no processed instance matches" } } }
        }
    }
}

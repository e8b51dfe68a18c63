//! Overview: throughput, labels of the last hour, queue per destination, dead letters, disk,
//! model, associations, and the latest operator actions.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use radroute_queue::{Counts, JobFilter, JobState};

use crate::auth::Operator;
use crate::history::Window;
use crate::layout::{self, ago, bytes, now_ms};
use crate::source::{NodeFacts, OperatorAction};
use crate::ConsoleState;

/// Jobs read to find the oldest queued one of a destination.
const OLDEST_SCAN: usize = 10_000;

struct Data {
    facts: NodeFacts,
    counts: Counts,
    oldest: BTreeMap<String, i64>,
    window: Window,
    actions: Vec<OperatorAction>,
}

fn read(state: &ConsoleState) -> Result<Data, String> {
    let facts = state.node.facts();
    let counts = state.queue.counts().map_err(|e| e.to_string())?;
    let mut oldest = BTreeMap::new();
    for (dest, c) in &counts.per_destination {
        if c.queued == 0 {
            continue;
        }
        let jobs = state
            .queue
            .list_jobs(&JobFilter {
                state: Some(JobState::Queued),
                destination: Some(dest.clone()),
                limit: OLDEST_SCAN,
            })
            .map_err(|e| e.to_string())?;
        if let Some(first) = jobs.iter().map(|j| j.created_at.0).min() {
            oldest.insert(dest.clone(), first);
        }
    }
    let now = Instant::now();
    state.history.sample(now, facts.counters.clone());
    let window = state.history.window(now, &facts.counters);
    let actions = state.node.operator_actions(10);
    Ok(Data {
        facts,
        counts,
        oldest,
        window,
        actions,
    })
}

/// `GET /`.
pub async fn page(
    State(state): State<ConsoleState>,
    Extension(operator): Extension<Operator>,
    uri: OriginalUri,
) -> Response {
    let data = match layout::blocking(&state, read).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let url = super::self_url(&uri);
    layout::page("Overview", &url, &operator, html! {}, live(&data)).into_response()
}

fn live(d: &Data) -> Markup {
    let now = now_ms();
    let f = &d.facts;
    let span_min = d.window.span.as_secs() / 60;
    let headroom = f
        .spool_free_bytes
        .map(|free| free.saturating_sub(f.min_free_bytes));
    let low_disk = f
        .spool_free_bytes
        .is_some_and(|free| free < f.min_free_bytes.saturating_mul(2));
    html! {
        div.cards {
            div.card #rate-in { div.k { "Images in" } div.v { (format!("{:.1}", d.window.rate_in)) " /s" } div.s { (f.counters.received) " stored since start" } }
            div.card #rate-out { div.k { "Images out" } div.v { (format!("{:.1}", d.window.rate_out)) " /s" } div.s { (f.counters.forwarded) " delivered since start" } }
            div.card { div.k { "Queued" } div.v { (d.counts.jobs.queued) } div.s { (d.counts.jobs.in_flight) " in flight" } }
            div.card #dead-letters { div.k { "Dead letters" } div.v class=(if d.counts.jobs.dead > 0 { "bad" } else { "" }) { (d.counts.jobs.dead) } div.s { a href="/queue" { "open the queue" } } }
            div.card { div.k { "Associations open" } div.v { (f.associations_open) } div.s { "AE " (f.ae_title) } }
            div.card #disk {
                div.k { "Disk headroom" }
                @match headroom {
                    Some(h) => div.v class=(if low_disk { "bad" } else { "" }) { (bytes(h)) },
                    None => div.v.bad { "unknown" },
                }
                div.s { "free " (f.spool_free_bytes.map(bytes).unwrap_or_else(|| "?".into())) " − watermark " (bytes(f.min_free_bytes)) }
            }
            div.card #model {
                div.k { "Model" }
                @match &f.model {
                    Some(m) => {
                        div.v { (m.name) " " (m.version) }
                        div.s { (m.execution_provider) @if !m.loaded { " " span.flag.bad { "not loaded" } } }
                    }
                    None => { div.v.muted { "none" } div.s { "classification is off" } }
                }
            }
            div.card { div.k { "Instances" } div.v { (d.counts.instances.received + d.counts.instances.routed) } div.s { (d.counts.instances.received) " awaiting processing" } }
        }
        h2 { "Labels, last " (if span_min >= 60 { "hour".to_string() } else { format!("{} min (since the console started sampling)", span_min.max(1)) }) }
        table #labels {
            tr { th { "Label" } th.num { "Instances" } }
            @for (label, n) in &d.window.labels { tr { td { a href=(format!("/instances?label={}", crate::auth::urlencode(label))) { (label) } } td.num { (n) } } }
            @for (reason, n) in &d.window.abstentions { tr { td.muted { "unlabelled: " (reason) } td.num { (n) } } }
            @if d.window.labels.is_empty() && d.window.abstentions.is_empty() { tr { td.muted colspan="2" { "nothing processed in this window" } } }
        }
        h2 { "Queue by destination" }
        table #queue-by-destination {
            tr { th { "Destination" } th.num { "Queued" } th.num { "In flight" } th.num { "Delivered" } th.num { "Dead" } th { "Oldest queued" } }
            @for (dest, c) in &d.counts.per_destination {
                tr {
                    td { a href=(format!("/destinations#{dest}")) { (dest) } }
                    td.num { (c.queued) } td.num { (c.in_flight) } td.num { (c.delivered) }
                    td.num class=(if c.dead > 0 { "bad" } else { "" }) { (c.dead) }
                    td { @match d.oldest.get(dest) { Some(t) => (ago(*t, now)), None => span.muted { "—" } } }
                }
            }
        }
        h2 { "Operator actions" }
        table #operator-actions {
            tr { th { "When" } th { "Who" } th { "Action" } th { "On" } th { "Outcome" } }
            @for a in &d.actions {
                tr {
                    td { (layout::time(a.at.timestamp_millis())) }
                    td { (a.who) @if let Some(from) = &a.from { span.muted { " from " (from) } } }
                    td { (a.kind.as_str()) }
                    td { (a.target) }
                    td class=(if a.succeeded { "" } else { "bad" }) { (a.detail) }
                }
            }
            @if d.actions.is_empty() { tr { td.muted colspan="5" { "none yet" } } }
        }
    }
}

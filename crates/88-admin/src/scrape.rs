//! `GET /metrics`: sets the queue, spool and model gauges from their sources at scrape time
//! (so they are never stale) and renders the node's Prometheus recorder
//! ([`radroute_node::telemetry`] holds the names, help texts and the recorder).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use radroute_node::telemetry::{
    prometheus, MODEL_LOADED, QUEUE_INSTANCES, QUEUE_JOBS, SPOOL_FREE_BYTES,
};

use super::AdminState;

/// `GET /metrics`.
pub async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    let s = state.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(counts) = s.queue.counts() {
            for (dest, c) in &counts.per_destination {
                for (state, n) in [
                    ("queued", c.queued),
                    ("in_flight", c.in_flight),
                    ("delivered", c.delivered),
                    ("dead", c.dead),
                ] {
                    metrics::gauge!(QUEUE_JOBS, "destination" => dest.clone(), "state" => state)
                        .set(n as f64);
                }
            }
            for (state, n) in [
                ("received", counts.instances.received),
                ("routed", counts.instances.routed),
                ("done", counts.instances.done),
            ] {
                metrics::gauge!(QUEUE_INSTANCES, "state" => state).set(n as f64);
            }
        }
        if let Ok(free) = s.spool.free_bytes() {
            metrics::gauge!(SPOOL_FREE_BYTES).set(free as f64);
        }
        if let Some(loaded) = (s.model_loaded)() {
            metrics::gauge!(MODEL_LOADED).set(if loaded { 1.0 } else { 0.0 });
        }
    })
    .await;
    if let Some(cluster) = &state.cluster {
        super::cluster::record_gauges(cluster).await;
    }
    match prometheus() {
        Some(handle) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        ),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics recorder unavailable\n".into(),
        ),
    }
}

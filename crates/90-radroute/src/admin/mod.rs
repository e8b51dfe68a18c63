//! The admin HTTP surface (axum), loopback by default: `/healthz` (the process runs),
//! `/readyz` (spool writable, queue open, model loaded when configured) and `/metrics`
//! (Prometheus text).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use radroute_queue::UnixMillis;

use crate::node::NodeState;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global Prometheus recorder once; later calls reuse it.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// The admin routes.
pub fn router(state: Arc<NodeState>) -> Router {
    let _ = prometheus();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<NodeState>>) -> impl IntoResponse {
    let s = state.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        if let Err(e) = s.spool.free_bytes() {
            problems.push(format!("spool: {e}"));
        }
        let probe = s.spool.root().join("tmp").join(".readyz");
        if let Err(e) = std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe)) {
            problems.push(format!("spool not writable: {e}"));
        }
        if let Err(e) = s.queue.counts() {
            problems.push(format!("queue: {e}"));
        }
        if s.model_loaded == Some(false) {
            problems.push("model not loaded".into());
        }
        problems
    })
    .await
    .unwrap_or_else(|e| vec![format!("readiness check failed: {e}")]);
    if checks.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", checks.join("\n")),
        )
    }
}

async fn metrics_text(State(state): State<Arc<NodeState>>) -> impl IntoResponse {
    let s = state.clone();
    // Queue depth is read at scrape time, so it is never stale.
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(counts) = s.queue.counts() {
            for (dest, c) in &counts.per_destination {
                for (state, n) in [("queued", c.queued), ("in_flight", c.in_flight), ("delivered", c.delivered), ("dead", c.dead)] {
                    metrics::gauge!("radroute_queue_jobs", "destination" => dest.clone(), "state" => state).set(n as f64);
                }
            }
            for (state, n) in [("received", counts.instances.received), ("routed", counts.instances.routed), ("done", counts.instances.done)] {
                metrics::gauge!("radroute_queue_instances", "state" => state).set(n as f64);
            }
        }
        if let Ok(free) = s.spool.free_bytes() {
            metrics::gauge!("radroute_spool_free_bytes").set(free as f64);
        }
        let _ = UnixMillis::now();
    })
    .await;
    match prometheus() {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics recorder unavailable\n".into(),
        ),
    }
}

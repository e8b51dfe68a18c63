//! radroute's admin HTTP surface (axum), loopback by default (`[admin] listen`), with an
//! optional bearer token (`[admin] token`). Documented in docs/admin-api.md and
//! docs/openapi.yaml. It reads a running node through radroute-node's [`NodeState`] and runs
//! beside it ([`spawn`]); the node does not know it.
//!
//! * `GET /healthz`: the process runs (never needs the token, for liveness probes).
//! * `GET /readyz`: spool writable, queue open, model loaded when configured (503 otherwise).
//! * `GET /metrics`: Prometheus text; queue gauges are read at scrape time ([`scrape`]; the
//!   names and the recorder are radroute-node's `telemetry`).
//! * `/api/v1/...`: jobs (list, counts, retry, drop, retry dead letters), instance and study
//!   look-ups, and this API's OpenAPI document ([`api`]).
//!
//! Every queue call runs on the blocking pool (`spawn_blocking`): the queue is synchronous
//! SQLite. The queue's types are deliberately not `Serialize`; the JSON shapes (DTOs) live
//! here, in [`api`].

mod api;
mod auth;
pub mod cluster;
mod console;
pub mod operator;
pub mod scrape;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use radroute_config::AdminConfig;
use radroute_node::telemetry::prometheus;
use radroute_node::{Node, NodeError, NodeState};
use radroute_queue::ForwardQueue;
use radroute_spool::InstanceStore;
use tracing::{info, warn};

/// The OpenAPI description of every route below, served at `/api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// What the admin handlers need. Built from the node's [`NodeState`] by [`router_with`]; the
/// tests build it directly.
#[derive(Clone)]
pub struct AdminState {
    /// Instance bytes (readiness probe, free space gauge): the local spool or PostgreSQL.
    pub spool: Arc<dyn InstanceStore>,
    /// The forward queue.
    pub queue: Arc<dyn ForwardQueue>,
    /// `Some(true)` when labelling is configured and its model loaded, `Some(false)` when it
    /// is configured but not loaded (not ready), `None` when labelling is not configured.
    pub model_loaded: Arc<dyn Fn() -> Option<bool> + Send + Sync>,
    /// Bearer token; `None` (or empty) means no authentication.
    pub token: Option<Arc<str>>,
    /// The audit trail: operator actions are recorded here.
    pub audit: Arc<radroute_audit::Audit>,
    /// Cluster mode: the node's cluster wiring (`/api/v1/cluster`, cluster gauges); `None` for
    /// a single node.
    pub cluster: Option<Arc<radroute_node::cluster::Cluster>>,
}

impl AdminState {
    /// The admin state of a running node, with the token from `[admin]`.
    pub fn from_node(node: Arc<NodeState>, cfg: &AdminConfig) -> AdminState {
        let spool = node.spool.clone();
        let queue = node.queue.clone();
        let audit = node.audit.clone();
        let cluster = node.cluster.clone();
        AdminState {
            spool,
            queue,
            audit,
            cluster,
            model_loaded: Arc::new(move || node.model_loaded),
            token: cfg
                .token
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(Arc::from),
        }
    }
}

/// The admin routes of a node, protected by `cfg.token` when it is set, and the web console
/// at `/` (radroute-console: login with the same token, session cookie).
pub fn router_with(state: Arc<NodeState>, cfg: &AdminConfig) -> Router {
    let console = console::state(state.clone(), cfg.token.as_deref());
    build(AdminState::from_node(state, cfg)).merge(radroute_console::router(console))
}

/// Binds `[admin] listen` (nothing when it is empty) and serves the admin routes of `node`
/// beside it until the node stops.
pub async fn spawn(node: &mut Node, cfg: &AdminConfig) -> Result<(), NodeError> {
    if cfg.listen.is_empty() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
    let router = router_with(node.state(), cfg);
    let mut stop = node.stopping();
    info!(listen = %cfg.listen, "admin HTTP listening");
    node.spawn_service(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // The client's address is recorded with each operator action.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "admin HTTP stopped");
        }
    });
    Ok(())
}

/// Every route but `/healthz`, with the HTTP method(s) as written in docs/openapi.yaml. The
/// router is built from this table, and a unit test checks it against the OpenAPI document.
fn protected_routes() -> Vec<(
    &'static str,
    &'static [&'static str],
    MethodRouter<AdminState>,
)> {
    vec![
        ("/readyz", &["get"], get(readyz)),
        ("/metrics", &["get"], get(scrape::metrics_text)),
        ("/api/v1/openapi.yaml", &["get"], get(openapi)),
        ("/api/v1/jobs", &["get"], get(api::list_jobs)),
        ("/api/v1/jobs/counts", &["get"], get(api::counts)),
        ("/api/v1/jobs/retry-dead", &["post"], post(api::retry_dead)),
        ("/api/v1/jobs/{id}/retry", &["post"], post(api::retry_job)),
        ("/api/v1/jobs/{id}/drop", &["post"], post(api::drop_job)),
        ("/api/v1/audit", &["get"], get(operator::list)),
        ("/api/v1/cluster", &["get"], get(cluster::status)),
        ("/api/v1/instances/{id}", &["get"], get(api::instance)),
        (
            "/api/v1/studies/{study_instance_uid}",
            &["get"],
            get(api::study),
        ),
    ]
}

/// Routes that never need the token.
fn public_routes() -> Vec<(
    &'static str,
    &'static [&'static str],
    MethodRouter<AdminState>,
)> {
    vec![("/healthz", &["get"], get(healthz))]
}

/// Builds the router from an [`AdminState`].
pub fn build(state: AdminState) -> Router {
    let _ = prometheus();
    let mut protected = Router::new();
    for (path, _, method_router) in protected_routes() {
        protected = protected.route(path, method_router);
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let mut public = Router::new();
    for (path, _, method_router) in public_routes() {
        public = public.route(path, method_router);
    }
    public
        .merge(protected)
        .fallback(api::not_found)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        OPENAPI_YAML,
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let s = state.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        // Free space answers, a probe file can be written, and (cluster mode) PostgreSQL
        // answers: InstanceStore::check_ready.
        if let Err(e) = s.spool.check_ready() {
            problems.push(format!("spool not writable: {e}"));
        }
        if let Err(e) = s.queue.counts() {
            problems.push(format!("queue: {e}"));
        }
        if (s.model_loaded)() == Some(false) {
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

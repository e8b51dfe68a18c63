//! radroute's web console: what a PACS admin looks at when "the knee studies did not arrive".
//!
//! Server-rendered HTML ([maud], compile-time templates that escape every value: patient names
//! are attacker-controlled text) with htmx for live parts (each page polls itself every 2 s and
//! swaps its `#live` block) and for the buttons. Every asset is embedded in the binary
//! ([`assets`]): no CDN, no network at run time. Every page is a plain GET URL (searches are
//! query strings), so it can be linked and bookmarked.
//!
//! The console is an axum [`Router`] that the admin server merges at `/`. It reads the forward
//! queue (radroute-queue), the evidence store (radroute-evidence: scores, model input, routing
//! decision, job history) and, for what only the running node knows (model, disk, counters,
//! destinations, rules, C-ECHO, the rule tester, the operator log), the small [`NodeView`]
//! trait that the node implements.
//!
//! Access ([`auth`]): when the admin token is set, a login page takes it and sets a session
//! cookie (HttpOnly, SameSite=Strict); the bearer token works too. State-changing requests
//! need the session's CSRF token in a header (htmx sends it) and, when the browser says where
//! it comes from, the same origin. Without a token (allowed on a loopback admin listener only)
//! the console answers only requests whose Host is a loopback name, so a DNS-rebinding page
//! cannot read it.
//!
//! Modules: [`source`] (the `NodeView` trait and its types), [`auth`], [`assets`], `layout`
//! (page frame, shared bits), `pages/*` (one file per page), `history` (counter samples for
//! rates).
#![deny(missing_docs)]

pub mod assets;
pub mod auth;
mod history;
mod layout;
mod pages;
pub mod source;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use radroute_evidence::EvidenceStore;
use radroute_queue::ForwardQueue;

pub use source::{
    Counters, DestinationInfo, ModelFacts, NodeFacts, NodeView, OperatorAction, OperatorActionKind,
    RuleTestInput,
};

/// Everything the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    /// The forward queue.
    pub queue: Arc<dyn ForwardQueue>,
    /// Scores, model inputs, decisions and job history; `None` when the node keeps none.
    pub evidence: Option<Arc<EvidenceStore>>,
    /// What only the running node knows.
    pub node: Arc<dyn NodeView>,
    /// Sessions and the token.
    pub auth: Arc<auth::Auth>,
    /// Counter samples (rates, last hour) and the latest C-ECHO results.
    history: Arc<history::History>,
}

impl ConsoleState {
    /// The console's state; `token` is the admin token (`None` or empty: no login).
    pub fn new(
        queue: Arc<dyn ForwardQueue>,
        evidence: Option<Arc<EvidenceStore>>,
        node: Arc<dyn NodeView>,
        token: Option<&str>,
    ) -> ConsoleState {
        ConsoleState {
            queue,
            evidence,
            node,
            auth: Arc::new(auth::Auth::new(token)),
            history: Arc::new(history::History::default()),
        }
    }
}

/// The console's routes, to merge into the admin router. Starts the counter sampler when
/// called inside a tokio runtime (rates and "last hour" need samples while nobody looks).
pub fn router(state: ConsoleState) -> Router {
    history::spawn_sampler(&state);
    let pages = Router::new()
        .route("/", get(pages::overview::page))
        .route("/destinations", get(pages::destinations::page))
        .route("/destinations/{name}/echo", post(pages::destinations::echo))
        .route("/instances", get(pages::instances::search))
        .route("/instances/{id}", get(pages::instance::page))
        .route(
            "/instances/{id}/model-input.png",
            get(pages::instance::model_input),
        )
        .route("/studies/{uid}", get(pages::study::page))
        .route("/queue", get(pages::queue::page))
        .route("/queue/jobs/{id}/{action}", post(pages::queue::one))
        .route("/queue/bulk/{action}", post(pages::queue::bulk))
        .route("/rules", get(pages::rules::page))
        .route("/rules/test", post(pages::rules::test_upload))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/console/assets/{name}", get(assets::serve))
        .merge(pages)
        .with_state(state)
}

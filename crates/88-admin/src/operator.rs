//! Who is acting, for the audit trail, and `GET /api/v1/audit` (the operator actions,
//! newest first).
//!
//! Identity: the admin surface has one bearer token, so every authenticated caller is
//! `admin`; without a token (loopback only) callers are `anonymous`. The client's IP address
//! comes from the connection.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::Json;
use radroute_audit::{OperatorAction, OperatorActionKind};
use serde::{Deserialize, Serialize};

use super::AdminState;

/// The caller of a protected route (the token check has passed).
#[derive(Debug, Clone)]
pub struct Operator {
    /// Token identity.
    pub who: String,
    /// Client IP address, when known.
    pub from: Option<String>,
}

impl Operator {
    /// Records `kind` on `target` with its outcome in the audit trail.
    pub fn record(
        &self,
        state: &AdminState,
        kind: OperatorActionKind,
        target: impl Into<String>,
        outcome: Result<String, String>,
    ) {
        state.audit.record(OperatorAction::now(
            self.who.clone(),
            self.from.clone(),
            kind,
            target,
            outcome,
        ));
    }
}

impl FromRequestParts<AdminState> for Operator {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let who = if state.token.is_some() {
            "admin"
        } else {
            "anonymous"
        };
        let from = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Operator {
            who: who.to_string(),
            from,
        })
    }
}

/// `?limit=` of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Most recent actions to return (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// One operator action.
#[derive(Debug, Serialize)]
pub struct ActionDto {
    /// RFC 3339 UTC.
    pub at: String,
    /// Token identity.
    pub who: String,
    /// Client IP address.
    pub from: Option<String>,
    /// `retry`, `drop`, `retry-dead`, `reload`, `echo`.
    pub action: &'static str,
    /// `job/42`, `destination/pacs`, `dead-letters`, `rules`.
    pub target: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// What happened, or the error.
    pub detail: String,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Serialize)]
pub struct AuditDto {
    /// Newest first.
    pub actions: Vec<ActionDto>,
}

/// `GET /api/v1/audit?limit=`: the most recent operator actions, newest first.
pub async fn list(State(state): State<AdminState>, Query(q): Query<AuditQuery>) -> Json<AuditDto> {
    let limit = q.limit.unwrap_or(100).min(1000);
    let actions = state
        .audit
        .operator_actions(limit)
        .into_iter()
        .map(|a| ActionDto {
            at: a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            who: a.who,
            from: a.from,
            action: a.kind.as_str(),
            target: a.target,
            succeeded: a.succeeded,
            detail: a.detail,
        })
        .collect();
    Json(AuditDto { actions })
}

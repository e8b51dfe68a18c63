//! One file per page; each handler reads what it shows (on the blocking pool) and renders it.

pub mod destinations;
pub mod instance;
pub mod instances;
pub mod overview;
pub mod queue;
pub mod rules;
pub mod study;

use axum::extract::OriginalUri;

/// The page's own URL (path and query), which its live block polls.
pub fn self_url(uri: &OriginalUri) -> String {
    uri.0
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

/// A query value: `None` when absent or blank.
pub fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

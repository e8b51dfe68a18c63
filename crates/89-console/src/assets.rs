//! Assets embedded in the binary: htmx (vendored from its npm package, see
//! assets/README.md) and the stylesheet. Served at `/console/assets/{name}` without login
//! (they hold no data), cached by the browser for a day.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// htmx 2, minified (0BSD licence, assets/LICENSE-htmx).
pub const HTMX_JS: &[u8] = include_bytes!("../assets/htmx.min.js");
/// The console's stylesheet.
pub const CONSOLE_CSS: &[u8] = include_bytes!("../assets/console.css");

/// An embedded asset by name, with its content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "htmx.min.js" => Some(("text/javascript; charset=utf-8", HTMX_JS)),
        "console.css" => Some(("text/css; charset=utf-8", CONSOLE_CSS)),
        _ => None,
    }
}

/// `GET /console/assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

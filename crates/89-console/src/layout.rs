//! The page frame (header, navigation, live block) and small helpers every page uses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::auth::Operator;
use crate::ConsoleState;

/// The navigation: path, label.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/destinations", "Destinations"),
    ("/instances", "Instances"),
    ("/queue", "Queue"),
    ("/rules", "Rules"),
];

/// A whole page. `live` is re-fetched every 2 s (`self_url` with `hx-select`), `fixed` is
/// not (forms, images: they would lose their input or flicker). The live block's htmx
/// attributes are not inherited (`hx-disinherit`): a button inside it must not swap its answer
/// with the poll's `hx-select` / `outerHTML`.
pub fn page(
    title: &str,
    self_url: &str,
    operator: &Operator,
    fixed: Markup,
    live: Markup,
) -> Markup {
    let csrf = format!(r#"{{"X-CSRF-Token": "{}"}}"#, operator.csrf);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — radroute" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx.min.js" {}
            }
            body hx-headers=(csrf) {
                header {
                    span.brand { "radroute" }
                    nav {
                        @for (path, label) in NAV {
                            @let active = if active_for(self_url, path) { "active" } else { "" };
                            a class=(active) href=(path) { (label) }
                        }
                    }
                    @if operator.session {
                        form hx-post="/logout" { span.who { (operator.who) " " } button type="submit" { "Sign out" } }
                    } @else {
                        span.who style="margin-left:auto" { (operator.who) }
                    }
                }
                main {
                    h1 { (title) }
                    (fixed)
                    div #live hx-get=(self_url) hx-trigger="every 2s" hx-select="#live" hx-swap="outerHTML" hx-disinherit="*" {
                        (live)
                    }
                }
            }
        }
    }
}

fn active_for(url: &str, path: &str) -> bool {
    let url_path = url.split('?').next().unwrap_or(url);
    if *path == *"/" {
        url_path == "/"
    } else {
        url_path == path
            || url_path.starts_with(&format!("{path}/"))
            || (path == "/instances" && url_path.starts_with("/studies/"))
    }
}

/// Unix milliseconds as `2026-12-07 06:30:12 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// How long ago, in words (`3 min ago`).
pub fn ago(ms: i64, now_ms: i64) -> String {
    let s = (now_ms - ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// Bytes in binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// An error shown as a page (the message is escaped like everything else).
pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "radroute — error" } link rel="stylesheet" href="/console/assets/console.css"; }
            body { main { h1 { "Error" } p.error { (message.to_string()) } p { a href="/" { "Overview" } } } }
        }
    };
    (status, body).into_response()
}

/// Runs `f` on the blocking pool (queue, evidence and node calls block); a panic or a failed
/// call becomes a 500 page.
pub async fn blocking<T, F>(state: &ConsoleState, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&ConsoleState) -> Result<T, String> + Send + 'static,
{
    let s = state.clone();
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("console task failed: {e}"),
        )),
    }
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A small inline message returned to htmx after an action.
pub fn notice(ok: bool, text: impl std::fmt::Display) -> Markup {
    html! { span class=(if ok { "ok" } else { "bad" }) { (text.to_string()) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(ago(0, 61_000), "1 min ago");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert!(active_for("/studies/1.2", "/instances"));
        assert!(!active_for("/queue", "/"));
    }
}

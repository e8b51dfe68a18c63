//! Who may see the console, and CSRF protection of its actions.
//!
//! * With a token (`[admin] token`): `GET /login` shows a form; `POST /login` compares the
//!   token (constant time, a short pause after a wrong one) and sets a random session id in
//!   an HttpOnly, SameSite=Strict cookie (8 hours). `Authorization: Bearer <token>` works too.
//!   Any other request for a page is sent to the login page (303); other methods get 401.
//! * Without a token (the config refuses that unless the admin listener is loopback): every
//!   request is let in whose `Host` is a loopback name or address, so a page elsewhere that
//!   rebinds its DNS name to 127.0.0.1 cannot read patient data through the browser.
//! * State-changing requests (POST) need the session's CSRF token in `X-CSRF-Token` (the
//!   pages set it for htmx) and, when the browser sends `Origin`, the same origin. A request
//!   carrying the bearer token needs neither (a browser never adds it by itself).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::ConsoleState;

/// Name of the session cookie.
pub const COOKIE: &str = "radroute_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 1000;
/// Pause after a wrong token (slows guessing down).
const WRONG_TOKEN_PAUSE: Duration = Duration::from_millis(400);

/// The identity and CSRF token of an admitted request (a request extension for handlers).
#[derive(Debug, Clone)]
pub struct Operator {
    /// Token identity: `admin` with the token, `local` without one.
    pub who: String,
    /// CSRF token the pages embed for htmx; empty for bearer requests.
    pub csrf: String,
    /// Whether a logout button makes sense (a session exists).
    pub session: bool,
    /// Admitted by the bearer token (no CSRF check: a browser never adds it by itself).
    pub bearer: bool,
}

struct Session {
    csrf: String,
    created: Instant,
}

/// The token and the sessions.
pub struct Auth {
    token: Option<Arc<str>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// CSRF token of the no-token mode (one per process).
    open_csrf: String,
}

/// 32 random bytes as hex; `None` only when the OS has no randomness to give.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without an early exit: the time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        diff |= u64::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}

impl Auth {
    /// With `token` (ignored when empty) a login is needed.
    pub fn new(token: Option<&str>) -> Auth {
        Auth {
            token: token
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            sessions: Mutex::new(HashMap::new()),
            open_csrf: random_hex().unwrap_or_default(),
        }
    }

    /// Whether a token is configured.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| constant_time_eq(given.as_bytes(), t.as_bytes()))
    }

    /// A new session; its id for the cookie.
    fn open_session(&self) -> Option<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf,
                created: Instant::now(),
            },
        );
        Some(id)
    }

    /// The CSRF token of a live session.
    fn session_csrf(&self, id: &str) -> Option<String> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|s| s.created.elapsed() < SESSION_TTL)
            .map(|s| s.csrf.clone())
    }

    fn close_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Who sends this request, if anyone admitted.
    fn admit(&self, headers: &HeaderMap) -> Option<Operator> {
        let Some(_) = self.token else {
            return loopback_host(headers).then(|| Operator {
                who: "local".into(),
                csrf: self.open_csrf.clone(),
                session: false,
                bearer: false,
            });
        };
        if let Some(given) = bearer(headers) {
            return self.token_matches(given).then(|| Operator {
                who: "admin".into(),
                csrf: String::new(),
                session: false,
                bearer: true,
            });
        }
        let id = cookie(headers, COOKIE)?;
        let csrf = self.session_csrf(id)?;
        Some(Operator {
            who: "admin".into(),
            csrf,
            session: true,
            bearer: false,
        })
    }
}

/// The bearer token of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A cookie's value from the `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The `Host` header without its port.
fn host(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::HOST)?.to_str().ok()?;
    Some(match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => h,
    })
}

/// Whether `Host` names this machine by a loopback name or address.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(h) = host(headers) else {
        return false;
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `Origin`, when the browser sent one, is this server (same host and port).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// A local path to return to after the login (never another site: `//evil` is refused).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

/// Middleware of every console page and action.
pub async fn require(
    State(state): State<ConsoleState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let Some(operator) = state.auth.admit(headers) else {
        if !state.auth.required() {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "the console without a token answers only to localhost / 127.0.0.1 / [::1]\n",
            )
                .into_response();
        }
        if request.method() == Method::GET {
            let here = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = format!("/login?next={}", urlencode(here));
            return Redirect::to(&target).into_response();
        }
        return (StatusCode::UNAUTHORIZED, login_markup(None, "/")).into_response();
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let csrf_ok = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                !operator.csrf.is_empty()
                    && constant_time_eq(v.as_bytes(), operator.csrf.as_bytes())
            });
        if !(operator.bearer || csrf_ok && same_origin(headers)) {
            return (
                StatusCode::FORBIDDEN,
                "refused: missing CSRF token or cross-origin request (reload the page)\n",
            )
                .into_response();
        }
    }
    request.extensions_mut().insert(operator);
    next.run(request).await
}

/// Percent-encodes a path for a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query of `GET /login`.
#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Form of `POST /login`.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

fn login_markup(error: Option<&str>, next: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "radroute — sign in" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                form.login method="post" action="/login" {
                    h1 { "radroute console" }
                    p.muted { "Enter the admin token (" code { "[admin] token" } ")." }
                    @if let Some(e) = error { p.error { (e) } }
                    input type="hidden" name="next" value=(next);
                    label { "Token" input type="password" name="token" autocomplete="current-password" autofocus; }
                    button.primary type="submit" { "Sign in" }
                }
            }
        }
    }
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<ConsoleState>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if !state.auth.required() {
        return Redirect::to(&next).into_response();
    }
    login_markup(None, &next).into_response()
}

/// `POST /login`: a right token opens a session.
pub async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin login refused\n").into_response();
    }
    if !state.auth.token_matches(form.token.trim()) {
        tokio::time::sleep(WRONG_TOKEN_PAUSE).await;
        tracing::warn!("console: wrong token at login");
        return (
            StatusCode::UNAUTHORIZED,
            login_markup(Some("Wrong token."), &next),
        )
            .into_response();
    }
    let Some(id) = state.auth.open_session() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session id\n",
        )
            .into_response();
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<ConsoleState>,
    Extension(_who): Extension<Operator>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        state.auth.close_session(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("radroute_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
        .headers_mut()
        .insert("hx-redirect", HeaderValue::from_static("/login"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn next_is_always_local() {
        assert_eq!(local_path(Some("/instances?x=1")), "/instances?x=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn loopback_hosts_only_without_token() {
        let auth = Auth::new(None);
        for host in ["localhost:8080", "127.0.0.1:9", "[::1]:80", "127.0.0.1"] {
            assert!(auth.admit(&headers(&[("host", host)])).is_some(), "{host}");
        }
        for host in ["evil.example:8080", "10.0.0.1:80"] {
            assert!(auth.admit(&headers(&[("host", host)])).is_none(), "{host}");
        }
        assert!(auth.admit(&HeaderMap::new()).is_none());
    }

    #[test]
    fn token_bearer_and_sessions() {
        let auth = Auth::new(Some("s3cret"));
        assert!(auth.admit(&headers(&[("host", "localhost")])).is_none());
        assert!(auth
            .admit(&headers(&[("authorization", "Bearer s3cret")]))
            .is_some());
        assert!(auth
            .admit(&headers(&[("authorization", "Bearer wrong")]))
            .is_none());
        let id = auth.open_session().expect("session");
        let cookie = format!("other=1; {COOKIE}={id}");
        let op = auth
            .admit(&headers(&[("cookie", &cookie)]))
            .expect("session");
        assert_eq!(op.who, "admin");
        assert_eq!(op.csrf.len(), 64);
        assert!(auth
            .admit(&headers(&[("cookie", "radroute_session=forged")]))
            .is_none());
        auth.close_session(&id);
        assert!(auth.admit(&headers(&[("cookie", &cookie)])).is_none());
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(&headers(&[("host", "a:1")])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://b:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "null")
        ])));
    }
}

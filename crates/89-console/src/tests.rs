//! Router tests against a real SQLite queue and evidence store and a fake node: login and
//! sessions, CSRF, escaping of hostile header text, pages, actions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use radroute_evidence::{Evidence, EvidenceStore};
use radroute_queue::{ForwardQueue, NewInstance, Outcome, RetryPolicy, SqliteQueue, UnixMillis};
use tower::ServiceExt;

use crate::source::*;
use crate::ConsoleState;

const HOSTILE: &str = "<script>alert(1)</script>";

#[derive(Default)]
struct FakeNode {
    actions: Mutex<Vec<OperatorAction>>,
}

impl NodeView for FakeNode {
    fn facts(&self) -> NodeFacts {
        NodeFacts {
            ae_title: "RADROUTE".into(),
            model: Some(ModelFacts {
                name: "bodypart".into(),
                version: "1.1.0".into(),
                execution_provider: "CPU".into(),
                loaded: true,
            }),
            spool_free_bytes: Some(10 << 30),
            min_free_bytes: 1 << 30,
            associations_open: 2,
            counters: Counters::default(),
        }
    }
    fn destinations(&self) -> Vec<DestinationInfo> {
        vec![DestinationInfo {
            name: "pacs".into(),
            address: "127.0.0.1:1".into(),
            ae_title: "PACS".into(),
            reachable: None,
        }]
    }
    fn rules_text(&self) -> String {
        format!("[[routes]]\nname = \"{HOSTILE}\"\n")
    }
    fn test_rules(&self, input: RuleTestInput) -> Result<Evidence, String> {
        match input {
            RuleTestInput::Instance(id) if id == "i1" => Ok(Evidence {
                instance_id: id,
                label: Some("HAND".into()),
                matched: vec!["hands-to-pacs".into()],
                destinations: vec!["pacs".into()],
                ..Default::default()
            }),
            RuleTestInput::Instance(id) => Err(format!("no instance {id}")),
            RuleTestInput::File(bytes) => Err(format!("not DICOM ({} bytes)", bytes.len())),
        }
    }
    fn echo(&self, _destination: &str) -> Result<Duration, String> {
        Err("Connection refused (os error 111)".into())
    }
    fn record_action(&self, action: OperatorAction) {
        self.actions.lock().unwrap().push(action);
    }
    fn operator_actions(&self, _limit: usize) -> Vec<OperatorAction> {
        self.actions.lock().unwrap().clone()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    queue: Arc<SqliteQueue>,
    node: Arc<FakeNode>,
    app: Router,
}

/// A queue with instance `i1` (dead letter for `pacs`, hostile patient name in its evidence).
fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let queue =
        Arc::new(SqliteQueue::open(&dir.path().join("q.sqlite"), RetryPolicy::default()).unwrap());
    let now = UnixMillis::now();
    queue
        .add_instance(&NewInstance {
            id: "i1".into(),
            sop_instance_uid: "1.2.3.4".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: Some("1.2.3".into()),
            calling_ae: "MODALITY".into(),
            called_ae: "RADROUTE".into(),
            peer_addr: "127.0.0.1:5000".into(),
            received_at: now,
            bytes: 1000,
        })
        .unwrap();
    queue
        .route_instance("i1", Some("HAND"), None, &["pacs".into()], now)
        .unwrap();
    let job = queue.lease("pacs", 1, now).unwrap().remove(0);
    queue
        .complete(
            job.id,
            &Outcome::Dead {
                error: "refused: SOP class".into(),
                status: Some(0xA900),
            },
            now,
        )
        .unwrap();
    let evidence = Arc::new(EvidenceStore::open(&dir.path().join("e.sqlite")).unwrap());
    evidence
        .record(
            &Evidence {
                instance_id: "i1".into(),
                recorded_at: now.0,
                study_instance_uid: Some("1.2.3".into()),
                accession: Some("ACC1".into()),
                modality: Some("CR".into()),
                calling_ae: "MODALITY".into(),
                patient_name: Some(HOSTILE.into()),
                label: Some("HAND".into()),
                scores: vec![("hand".into(), 0.97), ("knee".into(), 0.02)],
                destinations: vec!["pacs".into()],
                ..Default::default()
            },
            Some(b"\x89PNG fake"),
        )
        .unwrap();
    let node = Arc::new(FakeNode::default());
    let state = ConsoleState::new(queue.clone(), Some(evidence), node.clone(), token);
    Fixture {
        _dir: dir,
        queue,
        node,
        app: crate::router(state),
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(path: &str) -> axum::http::request::Builder {
    Request::get(path).header(header::HOST, "127.0.0.1:8080")
}

/// Logs in; the session cookie and the page's CSRF token.
async fn login(app: &Router) -> (String, String) {
    let (status, headers, _) = send(
        app,
        Request::post("/login")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=s3cret&next=%2Fqueue"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/queue");
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, _, body) = send(
        app,
        get("/")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csrf = body
        .split("X-CSRF-Token&quot;: &quot;")
        .nth(1)
        .unwrap()
        .split("&quot;")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(csrf.len(), 64);
    (cookie, csrf)
}

#[tokio::test]
async fn unauthenticated_requests_get_the_login_page_not_data() {
    let f = fixture(Some("s3cret"));
    for path in [
        "/",
        "/instances?accession=ACC1",
        "/instances/i1",
        "/queue",
        "/rules",
        "/instances/i1/model-input.png",
    ] {
        let (status, headers, body) = send(&f.app, get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            headers[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?next=/"),
            "{path}"
        );
        assert!(
            !body.contains("ACC1") && !body.contains("alert"),
            "{path}: {body}"
        );
    }
    let (status, _, body) = send(
        &f.app,
        get("/login?next=/queue").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("type=\"password\""));
    // A POST without a session is refused, and nothing changes.
    let (status, _, _) = send(
        &f.app,
        Request::post("/queue/bulk/retry")
            .header(header::HOST, "127.0.0.1:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.queue.counts().unwrap().jobs.dead, 1);
    // A wrong token is refused.
    let (status, headers, _) = send(
        &f.app,
        Request::post("/login")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=nope"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn pages_show_escaped_data_after_login() {
    let f = fixture(Some("s3cret"));
    let (cookie, _) = login(&f.app).await;
    for (path, expect) in [
        ("/", "Dead letters"),
        ("/instances?accession=acc1", "ACC1"),
        ("/instances/i1", "model-input.png"),
        ("/studies/1.2.3", "HAND"),
        ("/queue", "refused: SOP class"),
        ("/queue", "id=\"action-result\""),
        ("/destinations", "never reached"),
        ("/rules?instance=i1", "hands-to-pacs"),
    ] {
        let (status, _, body) = send(
            &f.app,
            get(path)
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(expect), "{path} lacks {expect:?}");
        assert!(
            !body.contains(HOSTILE),
            "{path} shows unescaped header text"
        );
    }
    let (_, _, body) = send(
        &f.app,
        get("/instances/i1")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        body.contains("&lt;script&gt;"),
        "the patient name is shown, escaped"
    );
    let (status, headers, body) = send(
        &f.app,
        get("/instances/i1/model-input.png")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert!(body.contains("PNG fake"));
    // Bearer works as well as the cookie.
    let (status, _, _) = send(
        &f.app,
        get("/queue")
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn actions_need_csrf_and_same_origin() {
    let f = fixture(Some("s3cret"));
    let (cookie, csrf) = login(&f.app).await;
    let post = |path: &str| {
        Request::post(path)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    };
    // The cookie alone (a cross-site form) is not enough.
    let (status, _, _) = send(
        &f.app,
        post("/queue/bulk/retry")
            .body(Body::from("destination=pacs"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &f.app,
        post("/queue/bulk/retry")
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, "http://evil.example")
            .body(Body::from("destination=pacs"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(f.queue.counts().unwrap().jobs.dead, 1, "nothing changed");
    // With the token from the page and the same origin, the dead letter is queued again.
    let (status, _, body) = send(
        &f.app,
        post("/queue/bulk/retry")
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, "http://127.0.0.1:8080")
            .body(Body::from("destination=pacs&error="))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("1 done"), "{body}");
    let counts = f.queue.counts().unwrap();
    assert_eq!((counts.jobs.dead, counts.jobs.queued), (0, 1));
    let actions = f.node.operator_actions(10);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].who, "admin");
    assert_eq!(actions[0].kind, OperatorActionKind::RetryDead);
    assert_eq!(actions[0].target, "dead-letters destination pacs");
    assert!(actions[0].succeeded, "{:?}", actions[0]);
    assert_eq!(actions[0].detail, "retry: 1 dead letters, 0 failed");
    // Echo reports the error kind and is recorded.
    let (status, _, body) = send(
        &f.app,
        post("/destinations/pacs/echo")
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("connection refused"), "{body}");
    let actions = f.node.operator_actions(10);
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1].kind, OperatorActionKind::Echo);
    assert!(!actions[1].succeeded);
}

#[tokio::test]
async fn without_token_only_loopback_hosts() {
    let f = fixture(None);
    let (status, _, body) = send(&f.app, get("/queue").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = send(
        &f.app,
        Request::get("/queue")
            .header(header::HOST, "rebound.example:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn assets_are_embedded() {
    let f = fixture(Some("s3cret"));
    let (status, headers, body) = send(
        &f.app,
        Request::get("/console/assets/htmx.min.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(body.contains("htmx"));
    let (status, _, _) = send(
        &f.app,
        Request::get("/console/assets/../Cargo.toml")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(status, StatusCode::OK);
}

//! The admin surface over real HTTP: the router on 127.0.0.1:0 with a real spool and SQLite
//! queue in a temporary directory, read with a minimal HTTP/1.1 client.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use radroute_queue::{
    ForwardQueue, JobFilter, JobState, NewInstance, Outcome, RetryPolicy, SqliteQueue, UnixMillis,
};
use radroute_spool::Spool;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{build, protected_routes, public_routes, AdminState, OPENAPI_YAML};

struct Fixture {
    _dir: tempfile::TempDir,
    queue: Arc<SqliteQueue>,
    addr: SocketAddr,
}

async fn start(token: Option<&str>, model_loaded: Option<bool>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(&dir.path().join("spool")).expect("spool"));
    let queue = Arc::new(
        SqliteQueue::open(&dir.path().join("queue.sqlite"), RetryPolicy::default()).expect("queue"),
    );
    let state = AdminState {
        spool,
        queue: queue.clone(),
        model_loaded: Arc::new(move || model_loaded),
        token: token.map(Arc::from),
        audit: radroute_audit::Audit::disabled(radroute_audit::AppIdentity::local("TEST", None)),
        cluster: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = build(state);
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    Fixture {
        _dir: dir,
        queue,
        addr,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
async fn http(addr: SocketAddr, method: &str, target: &str, token: Option<&str>) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn add(queue: &dyn ForwardQueue, id: &str, study: &str, label: Option<&str>, dests: &[&str]) {
    queue
        .add_instance(&NewInstance {
            id: id.into(),
            sop_instance_uid: format!("1.2.3.{id}"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            study_instance_uid: Some(study.into()),
            calling_ae: "CR_ROOM1".into(),
            called_ae: "RADROUTE".into(),
            peer_addr: "10.0.0.7:50123".into(),
            received_at: UnixMillis::now(),
            bytes: 1234,
        })
        .expect("add instance");
    let note = label.is_none().then_some("model abstained");
    let dests: Vec<String> = dests.iter().map(|d| d.to_string()).collect();
    queue
        .route_instance(id, label, note, &dests, UnixMillis::now())
        .expect("route");
}

fn job_id(queue: &dyn ForwardQueue, destination: &str, state: JobState) -> i64 {
    queue
        .list_jobs(&JobFilter {
            state: Some(state),
            destination: Some(destination.into()),
            limit: 10,
        })
        .expect("list")
        .first()
        .unwrap_or_else(|| panic!("a {state} job for {destination}"))
        .id
}

/// Leases the due job of `destination` and completes it with `outcome`.
fn complete(queue: &dyn ForwardQueue, destination: &str, outcome: Outcome) -> i64 {
    let jobs = queue
        .lease(destination, 1, UnixMillis::now())
        .expect("lease");
    let job = jobs.first().expect("a due job");
    queue
        .complete(job.id, &outcome, UnixMillis::now())
        .expect("complete");
    job.id
}

#[test]
fn the_openapi_document_lists_exactly_the_routes() {
    let mut documented = BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in OPENAPI_YAML.lines() {
        if !line.starts_with(' ') {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end().trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ") {
            let m = m.trim_end().trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete", "head"].contains(&m) {
                documented.insert(format!("{m} {path}"));
            }
        }
    }
    let mut routed = BTreeSet::new();
    for (path, methods, _) in protected_routes().into_iter().chain(public_routes()) {
        for m in methods {
            routed.insert(format!("{m} {path}"));
        }
    }
    assert!(!routed.is_empty());
    assert_eq!(
        routed, documented,
        "docs/openapi.yaml must list exactly the router's routes"
    );
    for (path, _, _) in protected_routes() {
        assert!(
            OPENAPI_YAML.contains(&format!("  {path}:\n")),
            "{path} missing from docs/openapi.yaml"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_endpoints_and_metrics_over_http() {
    let f = start(None, Some(true)).await;
    let q: &dyn ForwardQueue = f.queue.as_ref();
    let study = "1.2.826.0.1.3680043.8.498.77";
    add(
        q,
        "inst-knee",
        study,
        Some("KNEE"),
        &["t1-pacs", "t1-review"],
    );
    add(q, "inst-none", study, None, &["t1-review"]);

    let r = http(f.addr, "GET", "/healthz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = http(f.addr, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // list, filters, bad parameters
    let r = http(f.addr, "GET", "/api/v1/jobs", None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    assert_eq!(r.json().as_array().expect("array").len(), 3);
    let r = http(
        f.addr,
        "GET",
        "/api/v1/jobs?state=queued&destination=t1-pacs&limit=5",
        None,
    )
    .await;
    let jobs = r.json();
    assert_eq!(jobs.as_array().expect("array").len(), 1);
    assert_eq!(jobs[0]["destination"], "t1-pacs");
    assert_eq!(jobs[0]["state"], "queued");
    assert_eq!(jobs[0]["instance_id"], "inst-knee");
    assert_eq!(jobs[0]["study_instance_uid"], study);
    assert!(jobs[0]["created_at"].as_str().expect("time").ends_with('Z'));
    let r = http(f.addr, "GET", "/api/v1/jobs?state=bogus", None).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().expect("error").contains("bogus"));
    let r = http(f.addr, "GET", "/api/v1/jobs?limit=0", None).await;
    assert_eq!(r.status, 400);

    // a dead letter, retried
    let dead = complete(
        q,
        "t1-pacs",
        Outcome::Dead {
            error: "SOP class not supported".into(),
            status: Some(0xA900),
        },
    );
    let r = http(f.addr, "GET", "/api/v1/jobs?state=dead", None).await;
    let jobs = r.json();
    assert_eq!(jobs[0]["id"], dead);
    assert_eq!(jobs[0]["last_status"], "A900");
    assert_eq!(jobs[0]["attempts"], 1);
    let r = http(f.addr, "POST", &format!("/api/v1/jobs/{dead}/retry"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "queued");
    let r = http(f.addr, "GET", "/api/v1/jobs?destination=t1-pacs", None).await;
    assert_eq!(r.json()[0]["state"], "queued");
    assert_eq!(r.json()[0]["attempts"], 0);

    // errors: unknown job, bad id, wrong state, wrong method, unknown endpoint
    let r = http(f.addr, "POST", "/api/v1/jobs/999999/retry", None).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .expect("error")
        .contains("999999"));
    let r = http(f.addr, "POST", "/api/v1/jobs/999999/drop", None).await;
    assert_eq!(r.status, 404);
    let r = http(f.addr, "POST", "/api/v1/jobs/abc/retry", None).await;
    assert_eq!(r.status, 400);
    r.json();
    let delivered = complete(q, "t1-pacs", Outcome::Delivered { status: 0 });
    let r = http(
        f.addr,
        "POST",
        &format!("/api/v1/jobs/{delivered}/drop"),
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    r.json();
    let r = http(
        f.addr,
        "GET",
        &format!("/api/v1/jobs/{delivered}/drop"),
        None,
    )
    .await;
    assert_eq!(r.status, 405);
    let r = http(f.addr, "GET", "/api/v1/nothing-here", None).await;
    assert_eq!(r.status, 404);
    r.json();

    // drop, then retry every dead letter of one destination
    let review = job_id(q, "t1-review", JobState::Queued);
    let r = http(f.addr, "POST", &format!("/api/v1/jobs/{review}/drop"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "dead");
    let r = http(
        f.addr,
        "GET",
        "/api/v1/jobs?state=dead&destination=t1-review",
        None,
    )
    .await;
    assert_eq!(r.json()[0]["last_error"], "dropped by operator");
    let r = http(
        f.addr,
        "POST",
        "/api/v1/jobs/retry-dead?destination=t1-pacs",
        None,
    )
    .await;
    assert_eq!(r.json()["retried"], 0);
    let r = http(
        f.addr,
        "POST",
        "/api/v1/jobs/retry-dead?destination=t1-review",
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["retried"], 1);
    assert_eq!(r.json()["destination"], "t1-review");

    // counts
    let r = http(f.addr, "GET", "/api/v1/jobs/counts", None).await;
    assert_eq!(r.status, 200);
    let c = r.json();
    assert_eq!(c["jobs"]["delivered"], 1);
    assert_eq!(c["jobs"]["queued"], 2);
    assert_eq!(c["instances"]["routed"], 2);
    assert_eq!(c["destinations"]["t1-review"]["queued"], 2);
    assert_eq!(c["destinations"]["t1-pacs"]["delivered"], 1);

    // instance and study look-ups
    let r = http(f.addr, "GET", "/api/v1/instances/inst-knee", None).await;
    assert_eq!(r.status, 200);
    let i = r.json();
    assert_eq!(i["label"], "KNEE");
    assert_eq!(i["state"], "routed");
    assert_eq!(i["destinations"]["t1-pacs"], "delivered");
    assert_eq!(i["destinations"]["t1-review"], "queued");
    assert_eq!(i["jobs"].as_array().expect("jobs").len(), 2);
    let r = http(f.addr, "GET", "/api/v1/instances/no-such-instance", None).await;
    assert_eq!(r.status, 404);
    r.json();
    let r = http(f.addr, "GET", &format!("/api/v1/studies/{study}"), None).await;
    assert_eq!(r.status, 200);
    let s = r.json();
    assert_eq!(s["study_instance_uid"], study);
    let instances = s["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 2);
    let none = instances
        .iter()
        .find(|i| i["id"] == "inst-none")
        .expect("abstained instance");
    assert!(none["label"].is_null());
    assert_eq!(none["note"], "model abstained");
    let r = http(f.addr, "GET", "/api/v1/studies/1.2.3.999", None).await;
    assert_eq!(r.status, 404);

    // metrics: queue gauges read at scrape time
    let r = http(f.addr, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let gauge = |dest: &str, state: &str| -> Option<f64> {
        r.body
            .lines()
            .find(|l| {
                l.starts_with("radroute_queue_jobs{")
                    && l.contains(&format!("destination=\"{dest}\""))
                    && l.contains(&format!("state=\"{state}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(gauge("t1-pacs", "delivered"), Some(1.0), "{}", r.body);
    assert_eq!(gauge("t1-review", "queued"), Some(2.0), "{}", r.body);
    assert_eq!(gauge("t1-review", "dead"), Some(0.0), "{}", r.body);
    assert!(
        r.body
            .contains("radroute_queue_instances{state=\"routed\"}"),
        "{}",
        r.body
    );
    assert!(r.body.contains("radroute_spool_free_bytes"), "{}", r.body);
    assert!(r.body.contains("# HELP radroute_queue_jobs"), "{}", r.body);

    let r = http(f.addr, "GET", "/api/v1/openapi.yaml", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("openapi: 3."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_everything_but_healthz() {
    let f = start(Some("s3cret-token"), None).await;
    add(
        f.queue.as_ref(),
        "inst-1",
        "1.2.3.4",
        Some("HAND"),
        &["t2-pacs"],
    );

    let r = http(f.addr, "GET", "/healthz", None).await;
    assert_eq!(r.status, 200);
    for target in [
        "/readyz",
        "/metrics",
        "/api/v1/jobs",
        "/api/v1/jobs/counts",
        "/api/v1/instances/inst-1",
        "/api/v1/studies/1.2.3.4",
        "/api/v1/openapi.yaml",
    ] {
        let r = http(f.addr, "GET", target, None).await;
        assert_eq!(r.status, 401, "{target} without a token");
        assert!(r.header("www-authenticate").is_some(), "{target}");
        assert!(r.json()["error"].is_string());
        let r = http(f.addr, "GET", target, Some("s3cret-tokeN")).await;
        assert_eq!(r.status, 401, "{target} with a wrong token");
        let r = http(f.addr, "GET", target, Some("s3cret-token")).await;
        assert_eq!(r.status, 200, "{target} with the token: {}", r.body);
    }
    let job = job_id(f.queue.as_ref(), "t2-pacs", JobState::Queued);
    let r = http(f.addr, "POST", &format!("/api/v1/jobs/{job}/drop"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        job_id(f.queue.as_ref(), "t2-pacs", JobState::Queued),
        job,
        "a refused request changes nothing"
    );
    let r = http(
        f.addr,
        "POST",
        "/api/v1/jobs/retry-dead",
        Some("s3cret-token"),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_model_is_not_loaded() {
    let f = start(None, Some(false)).await;
    let r = http(f.addr, "GET", "/readyz", None).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("model not loaded"), "{}", r.body);
    let r = http(f.addr, "GET", "/healthz", None).await;
    assert_eq!(r.status, 200);
}

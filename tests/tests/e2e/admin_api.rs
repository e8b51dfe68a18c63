//! Issue 5, metrics and REST over HTTP against the running daemon, with `[admin] token`:
//! 401 without (or with a wrong) token, /healthz open; /metrics after classification and
//! forwarding (received, forward per destination, queue gauges, label and abstention counters);
//! /api/v1/jobs, /api/v1/jobs/counts, /api/v1/studies/{uid}; a destination that does not
//! accept the SOP class makes dead letters (`max_attempts = 1`), which are retried over REST once
//! it accepts them, and delivered.

use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::http;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

use crate::classification::classify_toml;

/// storescp association profile that accepts CT Image Storage only.
const CT_ONLY: &str = "[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit

[[PresentationContexts]]
[CTOnly]
PresentationContext1 = CTImageStorage\\Uncompressed

[[Profiles]]
[CTOnly]
PresentationContexts = CTOnly
";

#[test]
fn metrics_rest_token_and_dead_letter_retry() {
    let dir = radroute_e2e::test_dir("admin");
    let d = dir.path();
    let good = StoreScp::start(&d.join("sink-good"), "GOOD", free_port());
    let cfg = d.join("ct-only.cfg");
    std::fs::write(&cfg, CT_ONLY).unwrap();
    let picky_port = free_port();
    let picky = StoreScp::start_with_args(
        &d.join("sink-picky"),
        "PICKY",
        picky_port,
        &["-xf", &cfg.to_string_lossy(), "CTOnly"],
    );
    let token = "e2e-s3cret";
    let r = Radroute::start(
        d,
        Config {
            extra: classify_toml("if-empty"),
            admin_token: Some(token.into()),
            max_attempts: 1,
            ..Config::default()
        }
        .destination("good", "GOOD", good.port)
        .destination("picky", "PICKY", picky_port),
    );
    let admin = r.config.admin_port;

    // Authentication.
    for path in ["/metrics", "/api/v1/jobs", "/api/v1/jobs/counts", "/readyz"] {
        let resp = http::get(admin, path).unwrap();
        assert_eq!(
            resp.status,
            401,
            "GET {path} without a token: {}",
            resp.text()
        );
        let resp = http::request_with_headers(
            "GET",
            admin,
            path,
            &[("Authorization", "Bearer wrong")],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(resp.status, 401, "GET {path} with a wrong token");
    }
    assert_eq!(http::get(admin, "/healthz").unwrap().status, 200);

    let study = "1.2.826.0.1.3680043.8.498.6161.1";
    let files = [d.join("in/hand.dcm"), d.join("in/flat.dcm")];
    let uids = make_instances(&[
        (
            &files[0],
            Instance {
                study: Some(study),
                ..Instance::default()
            },
        ),
        (
            &files[1],
            Instance {
                study: Some(study),
                pattern: "flat",
                ..Instance::default()
            },
        ),
    ]);
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));

    // The good destination gets both; the picky one makes two dead letters.
    let counts = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let c = r.api_json("/api/v1/jobs/counts");
            (c["destinations"]["good"]["delivered"] == 2 && c["destinations"]["picky"]["dead"] == 2)
                .then_some(c)
        },
        || r.context(&format!("counts: {}", r.api_json("/api/v1/jobs/counts"))),
    );
    assert_eq!(
        counts,
        r.queue_counts(),
        "REST counts differ from `radroute queue counts`"
    );
    assert_eq!(good.received().len(), 2);

    let m = r.metrics();
    let val = |name: &str, labels: &[(&str, &str)]| metric(&m, name, labels);
    assert_eq!(
        val(
            "radroute_instances_received_total",
            &[("outcome", "stored")]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        val(
            "radroute_forward_total",
            &[("destination", "good"), ("outcome", "delivered")]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        val(
            "radroute_forward_total",
            &[("destination", "picky"), ("outcome", "dead")]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        val(
            "radroute_queue_jobs",
            &[("destination", "picky"), ("state", "dead")]
        ),
        Some(2.0),
        "{m}"
    );
    assert!(
        val("radroute_queue_instances", &[("state", "routed")]).is_some(),
        "{m}"
    );
    assert!(
        val("radroute_spool_free_bytes", &[]).unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert_eq!(
        val("radroute_labels_total", &[("label", "HAND")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        val(
            "radroute_abstentions_total",
            &[("reason", "below_threshold")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(val("radroute_model_loaded", &[]), Some(1.0), "{m}");

    // Jobs: the dead letters with their error.
    let dead = r.api_json("/api/v1/jobs?state=dead&destination=picky");
    let dead = dead.as_array().unwrap().clone();
    assert_eq!(dead.len(), 2, "{dead:?}");
    for j in &dead {
        assert!(!j["last_error"].as_str().unwrap_or("").is_empty(), "{j}");
        assert_eq!(j["study_instance_uid"], study);
    }
    let delivered = r.api_json("/api/v1/jobs?state=delivered");
    assert_eq!(delivered.as_array().unwrap().len(), 2, "{delivered}");
    assert_eq!(
        r.admin_request("GET", "/api/v1/jobs?state=bogus")
            .unwrap()
            .status,
        400
    );
    let delivered_id = delivered[0]["id"].as_u64().unwrap();
    assert_eq!(
        r.admin_request("POST", &format!("/api/v1/jobs/{delivered_id}/retry"))
            .unwrap()
            .status,
        409,
        "retrying a delivered job"
    );

    // The study: both instances, the label of the labelled one, per-destination states.
    let s = r.api_json(&format!("/api/v1/studies/{study}"));
    let inst = s["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 2, "{s}");
    let hand = inst
        .iter()
        .find(|i| i["sop_instance_uid"] == uids[0].as_str())
        .expect("hand in study");
    assert_eq!(hand["label"], "HAND", "{s}");
    assert_eq!(hand["destinations"]["good"], "delivered", "{s}");
    assert_eq!(hand["destinations"]["picky"], "dead", "{s}");
    assert_eq!(
        r.admin_request("GET", "/api/v1/studies/1.2.3.4.404")
            .unwrap()
            .status,
        404
    );

    // The destination is fixed: retry one dead letter, then the rest.
    drop(picky);
    let fixed = StoreScp::start(&d.join("sink-fixed"), "PICKY", picky_port);
    let id = dead[0]["id"].as_u64().unwrap();
    let resp = r
        .admin_request("POST", &format!("/api/v1/jobs/{id}/retry"))
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["state"], "queued", "{v}");
    let first_uid = dead[0]["sop_instance_uid"].as_str().unwrap().to_string();
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || fixed.file_for(&first_uid),
        || r.context("retried job not delivered"),
    );
    let resp = r
        .admin_request("POST", "/api/v1/jobs/retry-dead?destination=picky")
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["retried"], 1);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let c = r.api_json("/api/v1/jobs/counts");
            (c["destinations"]["picky"]["delivered"] == 2 && c["jobs"]["dead"] == 0).then_some(())
        },
        || {
            r.context(&format!(
                "dead letters not delivered after retry: {}",
                r.api_json("/api/v1/jobs/counts")
            ))
        },
    );
    assert_eq!(fixed.received().len(), 2);
}

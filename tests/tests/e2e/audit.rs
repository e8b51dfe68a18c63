//! Issue 11, accountability: DICOM audit messages (PS3.15 A.5) reach a real syslog receiver
//! (rsyslog) over TCP and TLS, validate against the DICOM schema (xmllint), and never hold up
//! images when the repository is down; operator actions are recorded with who did them and
//! readable at `GET /api/v1/audit`.

use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::rsyslog::{validate_audit_xml, Received, Rsyslog, TlsFiles};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

/// Waits until rsyslog holds a message containing every one of `needles`.
fn wait_message(r: &Radroute, sys: &Rsyslog, what: &str, needles: &[&str]) -> Received {
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            sys.messages()
                .into_iter()
                .find(|m| needles.iter().all(|n| m.msg.contains(n)))
        },
        || {
            let got: Vec<String> = sys.messages().into_iter().map(|m| m.msg).collect();
            r.context(&format!(
                "no {what} audit message ({needles:?}) at the repository; got {got:#?}\nrsyslog:\n{}",
                sys.log_tail(20)
            ))
        },
    )
}

#[test]
fn transfers_start_and_operator_actions_reach_rsyslog_and_validate() {
    let dir = radroute_e2e::test_dir("audit-tcp");
    let sys = Rsyslog::start(&dir.path().join("rsyslog"), None);
    let corpus = gen_corpus(&dir.path().join("corpus"), 1, 64, 64, 11);
    let sink = StoreScp::start(&dir.path().join("sink"), "SINK", free_port());
    let mut cfg = Config::default().destination("pacs", "SINK", sink.port);
    cfg.admin_token = Some("s3cret".into());
    cfg.extra.push_str(&format!(
        "[audit]\nrepository = \"127.0.0.1:{}\"\n",
        sys.port
    ));
    let r = Radroute::start(dir.path(), cfg);

    let start = wait_message(&r, &sys, "application start", &["110120"]);
    assert_eq!(start.msgid, "IHE+RFC-3881");

    let files = vec![corpus[0].path.clone()];
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    let uid = corpus[0].sop_instance_uid.as_str();
    let received = wait_message(
        &r,
        &sys,
        "received",
        &["110104", "EventActionCode=\"C\"", uid],
    );
    assert!(
        received.msg.contains("UserID=\"STORESCU\""),
        "the sender is named: {}",
        received.msg
    );
    let forwarded = wait_message(
        &r,
        &sys,
        "forwarded",
        &["110104", "EventActionCode=\"R\"", uid],
    );
    assert!(
        forwarded.msg.contains("UserID=\"SINK\""),
        "{}",
        forwarded.msg
    );

    // An operator action: retrying dead letters (there are none; the action is still recorded).
    let resp = r
        .admin_request("POST", "/api/v1/jobs/retry-dead")
        .unwrap_or_else(|e| panic!("{}", r.context(&e)));
    assert_eq!(resp.status, 200, "{}", r.context(&resp.text()));
    let action = wait_message(&r, &sys, "operator action", &["110113", "retry-dead"]);
    assert!(action.msg.contains("UserID=\"admin\""), "{}", action.msg);

    let audit = r.api_json("/api/v1/audit");
    let first = &audit["actions"][0];
    assert_eq!(first["who"], "admin", "{audit}");
    assert_eq!(first["action"], "retry-dead", "{audit}");
    assert_eq!(first["succeeded"], true, "{audit}");
    assert!(
        first["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{audit}"
    );

    for m in [&start, &received, &forwarded, &action] {
        if let Err(e) = validate_audit_xml(dir.path(), &m.msg) {
            panic!(
                "audit message does not validate against the DICOM schema:\n{e}\n{}",
                m.msg
            );
        }
    }
    let text = r.metrics();
    assert!(
        metric(
            &text,
            "radroute_audit_messages_total",
            &[("outcome", "sent")]
        )
        .unwrap_or(0.0)
            >= 4.0,
        "{text}"
    );
}

#[test]
fn audit_messages_go_over_tls() {
    let dir = radroute_e2e::test_dir("audit-tls");
    let pki = radroute_e2e::tls::Pki::new(&dir.path().join("pki"));
    let (key, cert) = pki.leaf("rsyslog");
    let sys = Rsyslog::start(
        &dir.path().join("rsyslog"),
        Some(TlsFiles {
            ca: &pki.ca,
            cert: &cert,
            key: &key,
        }),
    );
    let corpus = gen_corpus(&dir.path().join("corpus"), 1, 64, 64, 12);
    let sink = StoreScp::start(&dir.path().join("sink"), "SINK", free_port());
    let mut cfg = Config::default().destination("pacs", "SINK", sink.port);
    cfg.extra.push_str(&format!(
        "[audit]\nrepository = \"localhost:{}\"\ntls = true\nca_file = {:?}\n",
        sys.port,
        pki.ca.display().to_string()
    ));
    let r = Radroute::start(dir.path(), cfg);
    let files = vec![corpus[0].path.clone()];
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    let received = wait_message(
        &r,
        &sys,
        "received over TLS",
        &["EventActionCode=\"C\"", &corpus[0].sop_instance_uid],
    );
    if let Err(e) = validate_audit_xml(dir.path(), &received.msg) {
        panic!("{e}\n{}", received.msg);
    }
}

/// A repository that is down costs the images nothing: every instance is acknowledged and
/// delivered, the audit messages that do not fit the queue are dropped and counted.
#[test]
fn a_down_repository_never_holds_images() {
    let dir = radroute_e2e::test_dir("audit-down");
    let corpus = gen_corpus(&dir.path().join("corpus"), 6, 64, 64, 13);
    let sink = StoreScp::start(&dir.path().join("sink"), "SINK", free_port());
    let mut cfg = Config::default().destination("pacs", "SINK", sink.port);
    cfg.extra.push_str(&format!(
        "[audit]\nrepository = \"127.0.0.1:{}\"\nqueue_capacity = 2\n",
        free_port()
    ));
    let r = Radroute::start(dir.path(), cfg);
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (sink.received().len() == files.len()).then_some(()),
        || r.context("instances not delivered while the audit repository was down"),
    );
    let dropped = wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            metric(
                &r.metrics(),
                "radroute_audit_messages_total",
                &[("outcome", "dropped")],
            )
            .filter(|d| *d >= 1.0)
        },
        || {
            r.context(&format!(
                "no dropped audit messages counted:\n{}",
                r.metrics()
            ))
        },
    );
    assert!(dropped >= 1.0);
    assert!(
        r.log().contains("audit messages are being dropped"),
        "{}",
        r.context("the first drop is logged")
    );
}

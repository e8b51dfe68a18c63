//! Issue 10, found #5 and "nothing leaks": instances dropped by a route, jobs given up by the
//! operator and dead letters (after `[spool] dead_letter_retention_secs`) have their spool files
//! purged; a retry of a job whose files are gone is refused (CLI and API) instead of queued to
//! fail.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu_as;
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

/// Sends `files` as `calling` and asserts every one was acknowledged.
fn send_as(r: &Radroute, calling: &str, files: &[PathBuf]) {
    let run = storescu_as(calling, &r.config.ae_title, r.dicom_port, &[], files);
    assert!(
        run.all_ok(files),
        "{}",
        r.context(&format!("storescu as {calling}:\n{}", run.log))
    );
}

/// Jobs of `destination` in `state`, as `radroute queue list` shows them.
fn jobs(r: &Radroute, destination: &str, state: &str) -> Vec<serde_json::Value> {
    r.queue_list()
        .into_iter()
        .filter(|j| j["destination"] == destination && j["state"] == state)
        .collect()
}

/// `radroute queue drop ID` for each job.
fn drop_jobs(r: &Radroute, jobs: &[serde_json::Value]) {
    for j in jobs {
        let id = j["id"].to_string();
        let (ok, out, err) = r.queue_cli(&["drop", &id]);
        assert!(ok, "radroute queue drop {id}: {out}{err}");
    }
}

/// Waits until the spool holds no instance file.
fn wait_spool_empty(r: &Radroute, timeout: Duration) {
    wait_for(
        timeout,
        Duration::from_millis(200),
        || r.spool_files().is_empty().then_some(()),
        || {
            let left = r.spool_files();
            r.context(&format!(
                "{} spool file(s) left: {left:?}\nqueue: {}",
                left.len(),
                r.queue_counts()
            ))
        },
    );
}

/// A retry of a purged job is refused with a clear error, by the CLI and by the API.
fn assert_retry_refused(r: &Radroute, job_id: &str) {
    let (ok, out, err) = r.queue_cli(&["retry", "--job", job_id]);
    assert!(
        !ok && err.contains("purged"),
        "CLI retry of purged job {job_id}: ok={ok} {out}{err}"
    );
    let resp = r
        .admin_request("POST", &format!("/api/v1/jobs/{job_id}/retry"))
        .expect("admin API");
    assert_eq!(resp.status, 409, "API retry: {}", resp.text());
    assert!(resp.text().contains("purged"), "API retry: {}", resp.text());
}

const DROP_QA_THEN_DOWN: &str = r#"
[[routes]]
name = "drop-qa"
when.calling_ae = ["QA"]
drop = true

[[routes]]
name = "to-down"
destinations = ["down"]
"#;

/// Found #5: 10 instances dropped by a `drop = true` route and 4 jobs given up by the operator
/// (`radroute queue drop`), `retention_secs = 0` (the default): the spool's instance folders
/// are back to empty within seconds.
#[test]
fn dropped_instances_and_operator_dropped_jobs_are_purged() {
    let dir = radroute_e2e::test_dir("spool-leaks");
    let corpus = gen_corpus(&dir.path().join("corpus"), 14, 128, 128, 51);
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();
    let r = Radroute::start(
        dir.path(),
        Config {
            routes: Some(DROP_QA_THEN_DOWN.into()),
            ..Config::default()
        }
        .destination("down", "DOWN", free_port()),
    );
    send_as(&r, "QA", &files[..10]);
    send_as(&r, "MOD", &files[10..]);
    let given_up = wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let queued: Vec<_> = r
                .queue_list()
                .into_iter()
                .filter(|j| j["destination"] == "down" && j["state"] != "dead")
                .collect();
            (queued.len() == 4).then_some(queued)
        },
        || r.context(&format!("4 jobs for down expected: {:?}", r.queue_list())),
    );
    drop_jobs(&r, &given_up);
    wait_spool_empty(&r, Duration::from_secs(20));
    let c = r.queue_counts();
    assert_eq!(c["instances"]["done"], 14, "{c}");
    assert_eq!(c["jobs"]["dead"], 4, "{c}");
    assert_retry_refused(&r, &given_up[0]["id"].to_string());
}

/// Soak: a few dozen instances, mixed delivered / dropped by a route / dead letters (some of
/// them then dropped by the operator): the spool ends empty, every delivered instance arrived,
/// and the dead letters kept their files until `dead_letter_retention_secs` passed.
#[test]
fn soak_mixed_outcomes_leave_the_spool_empty() {
    const DELIVERED: usize = 16;
    const DROPPED: usize = 12;
    const DEAD: usize = 8;
    let dir = radroute_e2e::test_dir("spool-soak");
    let corpus = gen_corpus(
        &dir.path().join("corpus"),
        DELIVERED + DROPPED + DEAD,
        128,
        128,
        53,
    );
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();
    let (to_pacs, rest) = files.split_at(DELIVERED);
    let (to_drop, to_down) = rest.split_at(DROPPED);
    let expected: BTreeSet<String> = corpus[..DELIVERED]
        .iter()
        .map(|f| f.sop_instance_uid.clone())
        .collect();
    let pacs = StoreScp::start(&dir.path().join("pacs"), "PACS", free_port());
    let routes = r#"
[[routes]]
name = "drop-qa"
when.calling_ae = ["QA"]
drop = true

[[routes]]
name = "held"
when.calling_ae = ["HELD"]
destinations = ["down"]

[[routes]]
name = "pacs"
destinations = ["pacs"]
"#;
    let r = Radroute::start(
        dir.path(),
        Config {
            routes: Some(routes.into()),
            max_attempts: 3,
            spool_extra: "dead_letter_retention_secs = 6\n".into(),
            ..Config::default()
        }
        .destination("pacs", "PACS", pacs.port)
        .destination("down", "DOWN", free_port()),
    );
    send_as(&r, "MOD", to_pacs);
    send_as(&r, "QA", to_drop);
    send_as(&r, "HELD", to_down);

    let dead = wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let dead = jobs(&r, "down", "dead");
            (dead.len() == DEAD).then_some(dead)
        },
        || {
            r.context(&format!(
                "{DEAD} dead letters expected: {}",
                r.queue_counts()
            ))
        },
    );
    // Dead letters keep their files for the dead-letter retention (the operator may retry).
    let incoming = std::fs::read_dir(r.spool_dir().join("incoming"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        incoming >= DEAD / 2,
        "dead letters lost their files early: {incoming} incoming files"
    );
    // The operator gives up on half of them; the rest wait for the retention.
    drop_jobs(&r, &dead[..DEAD / 2]);
    wait_spool_empty(&r, Duration::from_secs(30));
    assert_eq!(
        pacs.received(),
        expected,
        "{}",
        r.context("delivered set differs")
    );
    let c = r.queue_counts();
    assert_eq!(c["instances"]["done"], DELIVERED + DROPPED + DEAD, "{c}");
    assert_eq!(c["instances"]["received"], 0, "{c}");
    assert_eq!(c["instances"]["routed"], 0, "{c}");
    assert_eq!(c["jobs"]["delivered"], DELIVERED, "{c}");
    assert_eq!(c["jobs"]["dead"], DEAD, "{c}");
    assert_eq!(c["jobs"]["queued"], 0, "{c}");
    // A dead letter past its retention cannot be retried: nothing is left to send.
    assert_retry_refused(&r, &dead[DEAD - 1]["id"].to_string());
}

//! Issue 5, who and what radroute admits, with real peers:
//! * DICOM TLS end to end: storescu (client certificate) → radroute (`[node.tls]` with
//!   `client_ca`) → storescp over TLS (radroute verifies it as "localhost" and presents its own
//!   certificate); a plain storescu to the TLS port fails, so does TLS without a client
//!   certificate, and radroute keeps serving.
//! * `node.allow` (AE and AE@ip) and `max_associations_per_ae`.
//! * The disk watermark: A700 and nothing spooled, then a SIGHUP with a lower watermark and the
//!   next store succeeds.

use std::path::PathBuf;
use std::time::Duration;

use radroute_e2e::dcmtk::{echoscu_as, storescu};
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, HeldAssociation, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::tls::Pki;
use radroute_e2e::wait_for;

fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn tls_end_to_end_and_plain_client_refused() {
    let dir = radroute_e2e::test_dir("tls");
    let d = dir.path();
    let pki = Pki::new(&d.join("pki"));
    let (node_key, node_cert) = pki.leaf("node");
    let (client_key, client_cert) = pki.leaf("client");
    let (sink_key, sink_cert) = pki.leaf("sink");
    let (fwd_key, fwd_cert) = pki.leaf("forwarder");
    let ca = s(&pki.ca);

    let sink = StoreScp::start_with_args(
        &d.join("sink"),
        "TLSSINK",
        free_port(),
        &["+xa", "+tls", &s(&sink_key), &s(&sink_cert), "+cf", &ca],
    );
    let node_tls = format!(
        "tls = {{ cert = {:?}, key = {:?}, client_ca = {ca:?} }}\n",
        s(&node_cert),
        s(&node_key)
    );
    let dest_tls = format!(
        "tls_ca = {ca:?}\ntls_server_name = \"localhost\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        s(&fwd_cert),
        s(&fwd_key)
    );
    let r = Radroute::start(
        d,
        Config {
            node_extra: node_tls,
            ..Config::default()
        }
        .destination_with("sink", "TLSSINK", sink.port, &dest_tls),
    );
    let files: Vec<PathBuf> = (0..3).map(|i| d.join(format!("in/{i}.dcm"))).collect();
    let uids = make_instances(
        &files
            .iter()
            .map(|f| (f.as_path(), Instance::default()))
            .collect::<Vec<_>>(),
    );
    let tls_args = ["+tls", &s(&client_key), &s(&client_cert), "+cf", &ca];

    let run = storescu("RADROUTE", r.dicom_port, &tls_args, &files[..1]);
    assert!(
        run.all_ok(&files[..1]),
        "{}",
        r.context(&format!("TLS store failed:\n{}", run.log))
    );

    // Plain TCP to the TLS port: no store is acknowledged.
    let run = storescu("RADROUTE", r.dicom_port, &[], &files[1..2]);
    assert!(
        run.succeeded().is_empty() && run.code != Some(0),
        "{}",
        r.context(&format!("plain store to the TLS port:\n{}", run.log))
    );

    // TLS without a client certificate: `client_ca` makes radroute require one.
    let run = storescu(
        "RADROUTE",
        r.dicom_port,
        &["+tla", "+cf", &ca],
        &files[1..2],
    );
    assert!(
        run.succeeded().is_empty() && run.code != Some(0),
        "{}",
        r.context(&format!(
            "TLS store without a client certificate:\n{}",
            run.log
        ))
    );

    // Still serving TLS.
    let run = storescu("RADROUTE", r.dicom_port, &tls_args, &files[2..]);
    assert!(
        run.all_ok(&files[2..]),
        "{}",
        r.context(&format!("TLS store after the plain attempt:\n{}", run.log))
    );

    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (sink.file_for(&uids[0]).is_some() && sink.file_for(&uids[2]).is_some()).then_some(()),
        || {
            r.context(&format!(
                "TLS destination has {:?}:\n{}",
                sink.received(),
                sink.log_tail(20)
            ))
        },
    );
    assert!(
        sink.file_for(&uids[1]).is_none(),
        "the plain store must not have been accepted"
    );
}

#[test]
fn allow_list_and_per_ae_limit() {
    let dir = radroute_e2e::test_dir("allow");
    let r = Radroute::start(
        dir.path(),
        Config {
            node_extra: "allow = [\"GOODAE\", \"IPAE@127.0.0.1\", \"NETAE@10.9.9.9\", \"HOLDER\"]\nmax_associations_per_ae = 1\n".into(),
            ..Config::default()
        },
    );
    let echo = |calling: &str| echoscu_as(calling, "RADROUTE", r.dicom_port, &[]);
    let accepted = |out: &str| out.contains("Received Echo Response (Success)");

    for bad in ["BADAE", "NETAE"] {
        let (code, out) = echo(bad);
        assert!(
            code != Some(0) && out.contains("Association Rejected") && !accepted(&out),
            "{}",
            r.context(&format!("{bad} must be rejected:\n{out}"))
        );
    }
    for good in ["GOODAE", "IPAE"] {
        let (code, out) = echo(good);
        assert!(
            code == Some(0) && accepted(&out),
            "{}",
            r.context(&format!("{good} must be accepted:\n{out}"))
        );
    }

    let held = HeldAssociation::open(r.dicom_port, "RADROUTE"); // calling AE HOLDER
    let (code, out) = echo("HOLDER");
    assert!(
        code != Some(0) && out.contains("Rejected Transient"),
        "{}",
        r.context(&format!(
            "a second association of HOLDER must be rejected (transient):\n{out}"
        ))
    );
    let (code, out) = echo("GOODAE");
    assert!(
        code == Some(0) && accepted(&out),
        "{}",
        r.context(&format!("another AE must be accepted meanwhile:\n{out}"))
    );
    held.release();
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let (code, out) = echo("HOLDER");
            (code == Some(0) && accepted(&out)).then_some(())
        },
        || r.context("HOLDER still refused after its association was released"),
    );
}

#[test]
fn disk_watermark_refuses_then_sighup_lowers_it() {
    let dir = radroute_e2e::test_dir("watermark");
    let d = dir.path();
    let sink = StoreScp::start(&d.join("sink"), "SINK", free_port());
    let config = Config {
        min_free_mb: 100_000_000,
        ..Config::default()
    }
    .destination("sink", "SINK", sink.port);
    let mut r = Radroute::start(d, config.clone());
    let files: Vec<PathBuf> = (0..2).map(|i| d.join(format!("in/{i}.dcm"))).collect();
    let uids = make_instances(
        &files
            .iter()
            .map(|f| (f.as_path(), Instance::default()))
            .collect::<Vec<_>>(),
    );

    let run = storescu("RADROUTE", r.dicom_port, &[], &files[..1]);
    let response = run
        .responses
        .get(&files[0])
        .cloned()
        .flatten()
        .unwrap_or_default();
    assert!(
        response.contains("A700")
            || response.contains("OutOfResources")
            || response.contains("Out of Resources"),
        "{}",
        r.context(&format!("expected A700, got {response:?}:\n{}", run.log))
    );
    let counts = r.queue_counts();
    let total: u64 = counts["instances"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(total, 0, "nothing may be queued: {counts}");
    let incoming = d.join("spool/incoming");
    let spooled = std::fs::read_dir(&incoming).map(|e| e.count()).unwrap_or(0);
    assert_eq!(
        spooled,
        0,
        "nothing may be spooled in {}",
        incoming.display()
    );
    assert!(r
        .metrics()
        .contains("radroute_store_refused_total{reason=\"low_disk\"} 1"));

    assert!(
        r.reload(Config {
            min_free_mb: 10,
            ..config
        }),
        "{}",
        r.context("reload refused")
    );
    let run = storescu("RADROUTE", r.dicom_port, &[], &files[1..]);
    assert!(
        run.all_ok(&files[1..]),
        "{}",
        r.context(&format!("store after lowering the watermark:\n{}", run.log))
    );
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || sink.file_for(&uids[1]),
        || r.context("not forwarded after the reload"),
    );
}

//! Issue 10, found #1–#3: hostile peers on the wire must not take radroute's memory or its
//! association slots. A raw DICOM peer written here on `std::net::TcpStream` sends what no
//! toolkit would: a command set declaring a 4 GiB element, a data set that never ends, silent
//! connections, a slow A-ASSOCIATE-RQ, a stalled TLS handshake. Each test checks the damage
//! (peak RSS from /proc/<pid>/status VmHWM, slots) and that real peers are still served.
//! Every test runs with radroute's default limits, so it runs unchanged against 1e254dd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use radroute_e2e::dcmtk::{echoscu, echoscu_as, storescu};
use radroute_e2e::python::{make_instances, HeldAssociation, Instance};
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::raw_peer::{associate_rq, element, pdata, read_pdu, store_rq, CR, VERIFICATION};
use radroute_e2e::tls::Pki;
use radroute_e2e::wait_for;

/// The contexts this peer proposes: CR Image Storage (1) and Verification (3).
const CONTEXTS: &[(u8, &str)] = &[(1, CR), (3, VERIFICATION)];

/// Peak resident memory of `pid` in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib / 1024
}

/// Opens an association as `calling`; panics unless radroute accepts it.
fn associate(r: &Radroute, calling: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", r.dicom_port)).expect("connect");
    s.write_all(&associate_rq(calling, "RADROUTE", CONTEXTS))
        .expect("send RQ");
    let answer = read_pdu(&mut s, Duration::from_secs(10));
    assert_eq!(
        answer.as_ref().map(|a| a.0),
        Some(0x02),
        "{}",
        r.context(&format!("expected A-ASSOCIATE-AC for {calling}"))
    );
    s
}

/// True once radroute has ended the connection (A-ABORT, or closed), within `limit`.
fn ended_by_radroute(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut b = [0u8; 4096];
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) if b[0] == 0x07 => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn echo_ok(r: &Radroute) {
    let (code, out) = echoscu("RADROUTE", r.dicom_port);
    assert!(
        code == Some(0) && out.contains("Received Echo Response (Success)"),
        "{}",
        r.context(&format!("echoscu must still work:\n{out}"))
    );
}

/// Found #1: a C-STORE-RQ command set of ~100 bytes declaring a (0000,0002) of ~4 GiB made
/// radroute's peak RSS 4.1 GB (dicom-parser sized its buffer from the declared length).
#[test]
fn command_set_declaring_4_gib_costs_no_memory() {
    let dir = radroute_e2e::test_dir("hostile-cmd");
    let r = Radroute::start(dir.path(), Config::default());
    let before = peak_rss_mib(r.pid());

    let mut s = associate(&r, "HOSTILE");
    let mut cmd = element(0x0000, 0x0000, &100u32.to_le_bytes());
    cmd.extend_from_slice(&0x0000u16.to_le_bytes());
    cmd.extend_from_slice(&0x0002u16.to_le_bytes());
    cmd.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    cmd.extend_from_slice(&[b'1'; 80]);
    assert!(cmd.len() < 120, "about 100 bytes sent");
    s.write_all(&pdata(true, true, &cmd)).expect("send command");
    let ended = ended_by_radroute(&mut s, Duration::from_secs(30));
    let peak = peak_rss_mib(r.pid());
    eprintln!("VmHWM before {before} MiB, after the 4 GiB command set {peak} MiB");
    assert!(
        peak < 300,
        "{}",
        r.context(&format!("peak RSS {peak} MiB after a 100-byte command set"))
    );
    assert!(
        ended,
        "{}",
        r.context("radroute must abort the association")
    );
    echo_ok(&r);
    assert!(r.log().contains("aborting association"));
}

/// Found #2: a data set that never ends (data PDVs without the last bit) was taken into memory
/// whole. With the default limits radroute aborts it past `max_instance_mb` (256 MiB), its
/// memory stays bounded, and another sender is served meanwhile.
#[test]
fn data_set_that_never_ends_is_aborted_and_memory_stays_bounded() {
    let dir = radroute_e2e::test_dir("hostile-data");
    let d = dir.path();
    let r = Radroute::start(d, Config::default());
    let files: Vec<PathBuf> = vec![d.join("in/0.dcm")];
    make_instances(&[(files[0].as_path(), Instance::default())]);

    let mut s = associate(&r, "HOSTILE");
    s.write_all(&pdata(true, true, &store_rq("1.2.3.4.5.6.7")))
        .expect("send command");
    // 16 KiB PDUs (radroute's default max PDU is 64 KiB) up to 640 MiB, never the last one.
    let chunk = pdata(false, false, &vec![0x5a; 16 * 1024 - 6]);
    let total: usize = 640 << 20;
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut sent = 0usize;
    let mut other = None;
    while sent < total {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
        if other.is_none() && sent >= 64 << 20 {
            // Another modality, while the hostile data set is being received.
            other = Some(storescu("RADROUTE", r.dicom_port, &[], &files));
        }
    }
    let cut_short = sent < total;
    let ended = ended_by_radroute(&mut s, Duration::from_secs(30));
    let peak = peak_rss_mib(r.pid());
    eprintln!(
        "hostile data set: {} MiB sent, aborted {ended}, VmHWM {peak} MiB",
        sent >> 20
    );
    let other = other.expect("the other sender ran");
    assert!(
        other.all_ok(&files),
        "{}",
        r.context(&format!(
            "another sender must be served meanwhile:\n{}",
            other.log
        ))
    );
    assert!(
        cut_short && ended,
        "{}",
        r.context(&format!(
            "radroute must abort the association ({} MiB taken)",
            sent >> 20
        ))
    );
    assert!(
        peak < 450,
        "{}",
        r.context(&format!("peak RSS {peak} MiB for one endless data set"))
    );
    assert_eq!(
        metric(
            &r.metrics(),
            "radroute_associations_total",
            &[("outcome", "aborted_too_large")]
        ),
        Some(1.0),
        "{}",
        r.context("the abort is counted")
    );
    echo_ok(&r);
}

/// Found #3: with max_associations = 32, 40 connections that send nothing kept a real echoscu
/// out for over 10 s. Negotiating connections hold no slot now, and ARTIM closes them.
#[test]
fn silent_connections_hold_no_slots_and_artim_closes_them() {
    let dir = radroute_e2e::test_dir("hostile-silent");
    let r = Radroute::start(
        dir.path(),
        Config {
            max_associations: 32,
            ..Config::default()
        },
    );
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", r.dicom_port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // let radroute accept them all
    let started = Instant::now();
    let (code, out) = echoscu("RADROUTE", r.dicom_port);
    let took = started.elapsed();
    eprintln!("echoscu with 40 silent connections open: {took:?}");
    assert!(
        code == Some(0) && out.contains("Received Echo Response (Success)"),
        "{}",
        r.context(&format!("echoscu must get an association:\n{out}"))
    );
    assert!(took < Duration::from_millis(1500), "echoscu took {took:?}");
    // The PS3.8 ARTIM timer (10 s by default) ends every one of them.
    let started = Instant::now();
    for s in &mut silent {
        assert!(
            ended_by_radroute(s, Duration::from_secs(15).saturating_sub(started.elapsed())),
            "{}",
            r.context("a silent connection outlived ARTIM")
        );
    }
}

/// Found #3: the per-AE limit was skipped when the A-ASSOCIATE-RQ arrived after 5 s.
#[test]
fn per_ae_limit_holds_for_a_slow_associate_rq() {
    let dir = radroute_e2e::test_dir("hostile-slow-rq");
    let r = Radroute::start(
        dir.path(),
        Config {
            node_extra: "max_associations_per_ae = 1\n".into(),
            ..Config::default()
        },
    );
    let held = HeldAssociation::open(r.dicom_port, "RADROUTE"); // calling AE HOLDER
    let mut s = TcpStream::connect(("127.0.0.1", r.dicom_port)).expect("connect");
    std::thread::sleep(Duration::from_secs(6));
    s.write_all(&associate_rq("HOLDER", "RADROUTE", CONTEXTS))
        .expect("send RQ");
    let answer = read_pdu(&mut s, Duration::from_secs(10));
    assert_eq!(
        answer.as_ref().map(|a| (a.0, a.1.get(1).copied())),
        Some((0x03, Some(2))),
        "{}",
        r.context("a second HOLDER association must get a transient A-ASSOCIATE-RJ")
    );
    held.release();
}

/// Found #3: a stalled TLS handshake held an association slot forever (the handshake ran
/// before any timeout). With max_associations = 1 a real TLS echoscu gets through meanwhile,
/// and ARTIM closes the stalled connection.
#[test]
fn stalled_tls_handshake_holds_no_slot_and_is_dropped() {
    let dir = radroute_e2e::test_dir("hostile-tls");
    let d = dir.path();
    let pki = Pki::new(&d.join("pki"));
    let (node_key, node_cert) = pki.leaf("node");
    let (client_key, client_cert) = pki.leaf("client");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let ca = s(&pki.ca);
    let r = Radroute::start(
        d,
        Config {
            max_associations: 1,
            node_extra: format!(
                "tls = {{ cert = {:?}, key = {:?}, client_ca = {ca:?} }}\n",
                s(&node_cert),
                s(&node_key)
            ),
            ..Config::default()
        },
    );
    // The harness's readiness probe (a TCP connect) must be over before the only slot is
    // contended.
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            r.log()
                .contains("association refused or failed during negotiation")
                .then_some(())
        },
        || r.context("the readiness probe's connection was not ended"),
    );
    let mut stalled = TcpStream::connect(("127.0.0.1", r.dicom_port)).expect("connect");
    // The first bytes of a TLS record header, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let tls = ["+tls", &s(&client_key), &s(&client_cert), "+cf", &ca];
    let (code, out) = echoscu_as("ECHOSCU", "RADROUTE", r.dicom_port, &tls);
    assert!(
        code == Some(0) && out.contains("Received Echo Response (Success)"),
        "{}",
        r.context(&format!(
            "a TLS echoscu must get the only slot while a handshake is stalled:\n{out}"
        ))
    );
    assert!(
        ended_by_radroute(&mut stalled, Duration::from_secs(15)),
        "{}",
        r.context("the stalled handshake outlived ARTIM")
    );
    eprintln!("stalled TLS handshake closed after {:?}", started.elapsed());
    wait_for(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            metric(
                &r.metrics(),
                "radroute_associations_total",
                &[("outcome", "artim_expired")],
            )
        },
        || r.context("ARTIM expiry not counted"),
    );
}

/// The target: 32 associations at once, each sending a data set that never ends, with
/// the default memory limits. The receive memory budget (384 MiB) holds them back (TCP backpressure)
/// and peak RSS stays far under 1 GiB; before, every byte sent was kept (32 × 36 MiB).
#[test]
fn thirty_two_endless_data_sets_stay_within_the_budget() {
    let dir = radroute_e2e::test_dir("hostile-32");
    // One slot more than the hostile associations, for the echo at the end.
    let r = Radroute::start(
        dir.path(),
        Config {
            max_associations: 33,
            ..Config::default()
        },
    );
    let per_association: usize = 36 << 20;
    let senders: Vec<_> = (0..32)
        .map(|i| {
            let mut s = associate(&r, &format!("HOSTILE{i}"));
            std::thread::spawn(move || {
                s.write_all(&pdata(true, true, &store_rq(&format!("1.2.3.{i}"))))
                    .expect("send command");
                let chunk = pdata(false, false, &vec![0xa5; 16 * 1024 - 6]);
                // A sender held back for 3 s by radroute's budget stops trying.
                s.set_write_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut sent = 0;
                while sent < per_association && s.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
                (s, sent)
            })
        })
        .collect();
    let results: Vec<(TcpStream, usize)> = senders
        .into_iter()
        .map(|t| t.join().expect("sender thread"))
        .collect();
    let sent: usize = results.iter().map(|(_, n)| n).sum();
    let peak = peak_rss_mib(r.pid());
    eprintln!(
        "32 endless data sets: {} MiB sent in all, VmHWM {peak} MiB",
        sent >> 20
    );
    echo_ok(&r);
    assert!(
        peak < 640,
        "{}",
        r.context(&format!(
            "peak RSS {peak} MiB with 32 endless data sets ({} MiB sent)",
            sent >> 20
        ))
    );
}

//! Issue 14, "One sender": the spool file is written while the data set arrives (write-behind
//! into `tmp/`), and only a data set that arrived whole and passed the checks becomes an
//! instance. A raw DICOM peer on `std::net::TcpStream` sends a real 4 MB instance in 16 KiB
//! PDUs and stops half-way, so the test sees the file being written before the last byte; then
//! it either finishes (the instance is stored byte for byte) or aborts (nothing is left: no file
//! in `tmp/` or `incoming/`, no queue row).

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use radroute_e2e::ports::free_port;
use radroute_e2e::python::{python, script};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::raw_peer::{associate_rq, pdata, read_pdu, store_rq, CR};
use radroute_e2e::wait_for;

/// PDV value size the peer sends (radroute's max PDU is 64 KiB by default).
const PDV: usize = 16 * 1024 - 6;

/// A 1024×2048 CR instance (4 MB of pixels) written by make_instance.py: its SOP Instance UID
/// and the data set bytes (what follows the file meta group).
fn large_instance(dir: &Path) -> (String, Vec<u8>) {
    let file = dir.join("large.dcm");
    let out = Command::new(python())
        .arg(script("make_instance.py"))
        .arg(&file)
        .args(["--rows", "1024", "--cols", "2048"])
        .output()
        .expect("run make_instance.py");
    assert!(out.status.success(), "{out:?}");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bytes = std::fs::read(&file).expect("read instance");
    assert_eq!(&bytes[128..132], b"DICM");
    // (0002,0000) UL, Explicit VR: tag 4, VR 2, length 2, value 4.
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().expect("4 bytes")) as usize;
    (uid, bytes[144 + group_len..].to_vec())
}

/// Files in the spool's `tmp/` with their sizes.
fn tmp_files(r: &Radroute) -> Vec<(String, u64)> {
    std::fs::read_dir(r.spool_dir().join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), len)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Opens an association, sends the C-STORE-RQ and the first half of `data`, and waits until
/// radroute's temporary spool file holds most of that half: the durable write runs while the
/// data set is still arriving.
fn send_half(r: &Radroute, uid: &str, data: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", r.dicom_port)).expect("connect");
    s.write_all(&associate_rq("HALFWAY", "RADROUTE", &[(1, CR)]))
        .expect("send A-ASSOCIATE-RQ");
    let answer = read_pdu(&mut s, Duration::from_secs(10));
    assert_eq!(
        answer.map(|a| a.0),
        Some(0x02),
        "{}",
        r.context("A-ASSOCIATE-AC")
    );
    s.write_all(&pdata(true, true, &store_rq(uid)))
        .expect("send command");
    let half = data.len() / 2;
    for chunk in data[..half].chunks(PDV) {
        s.write_all(&pdata(false, false, chunk)).expect("send data");
    }
    // The write-behind hands over whole 1 MiB chunks: at least half minus one is on disk.
    let want = (half - (1 << 20)) as u64;
    wait_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            tmp_files(r)
                .iter()
                .any(|(_, len)| *len >= want)
                .then_some(())
        },
        || {
            r.context(&format!(
                "the spool file must be written while the data set arrives \
                 ({want} bytes in tmp/): {:?}",
                tmp_files(r)
            ))
        },
    );
    assert!(r.spool_files().is_empty(), "nothing final before the end");
    s
}

/// Sends the rest of `data` and returns the C-STORE-RSP's status.
fn send_rest(s: &mut TcpStream, data: &[u8]) -> Option<u16> {
    let rest = &data[data.len() / 2..];
    let chunks: Vec<&[u8]> = rest.chunks(PDV).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        s.write_all(&pdata(false, n + 1 == chunks.len(), chunk))
            .expect("send data");
    }
    let (kind, body) = read_pdu(s, Duration::from_secs(30))?;
    assert_eq!(kind, 0x04, "a P-DATA-TF with the C-STORE-RSP");
    // The command set after the PDV header (length 4, context 1, control 1): find Status.
    let command = &body[6..];
    let tag = [0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00];
    let at = command.windows(8).position(|w| w == tag)? + 8;
    Some(u16::from_le_bytes([command[at], command[at + 1]]))
}

#[test]
fn data_set_written_while_it_arrives_is_stored_byte_for_byte() {
    let dir = radroute_e2e::test_dir("stream-complete");
    // A destination that is down: the instance waits in the spool and the queue.
    let r = Radroute::start(
        dir.path(),
        Config::default().destination("pacs", "PACS", free_port()),
    );
    let (uid, data) = large_instance(dir.path());
    let mut s = send_half(&r, &uid, &data);
    let status = send_rest(&mut s, &data);
    assert_eq!(status, Some(0x0000), "{}", r.context("C-STORE success"));
    let _ = s.write_all(&[0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]); // A-RELEASE-RQ
    let incoming: Vec<_> = r
        .spool_files()
        .into_iter()
        .filter(|p| p.parent().and_then(|d| d.file_name()) == Some("incoming".as_ref()))
        .collect();
    assert_eq!(incoming.len(), 1, "{}", r.context("one incoming file"));
    let file = std::fs::read(&incoming[0]).expect("read incoming file");
    assert!(
        file.ends_with(&data),
        "{}",
        r.context("the incoming file ends with the data set exactly as sent")
    );
    let group_len = u32::from_le_bytes(file[140..144].try_into().expect("4 bytes")) as usize;
    assert_eq!(
        file.len(),
        144 + group_len + data.len(),
        "file meta + data set"
    );
    assert!(tmp_files(&r).is_empty(), "{:?}", tmp_files(&r));
    // Its job is made by the processing step, which runs after the answer: wait for it.
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            r.queue_list()
                .iter()
                .any(|j| j["sop_instance_uid"] == uid.as_str())
                .then_some(())
        },
        || r.context(&format!("a queue job for {uid}: {:?}", r.queue_list())),
    );
}

#[test]
fn association_aborted_mid_data_set_leaves_no_file_and_no_row() {
    let dir = radroute_e2e::test_dir("stream-abort");
    let r = Radroute::start(
        dir.path(),
        Config::default().destination("pacs", "PACS", free_port()),
    );
    let (uid, data) = large_instance(dir.path());
    // Once with an A-ABORT, once with the connection simply gone.
    for abort in [true, false] {
        let mut s = send_half(&r, &uid, &data);
        if abort {
            s.write_all(&[0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])
                .expect("send A-ABORT");
        }
        drop(s);
        wait_for(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || tmp_files(&r).is_empty().then_some(()),
            || {
                r.context(&format!(
                    "the temporary file of an aborted data set must go (abort {abort}): {:?}",
                    tmp_files(&r)
                ))
            },
        );
        assert!(
            r.spool_files().is_empty(),
            "{}",
            r.context(&format!("no instance file: {:?}", r.spool_files()))
        );
    }
    let jobs = r.queue_list();
    assert!(
        jobs.is_empty(),
        "{}",
        r.context(&format!("no queue row: {jobs:?}"))
    );
    let counts = r.queue_counts();
    let rows: u64 = counts["instances"]
        .as_object()
        .unwrap_or_else(|| panic!("instance counts by state: {counts}"))
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(
        rows,
        0,
        "{}",
        r.context(&format!("no instance row: {counts}"))
    );
}

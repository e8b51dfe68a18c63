//! Issue 10, the pre-parse walk: data sets crafted against the parser, each sent verbatim in one
//! C-STORE (tests/scripts/raw_store.py). radroute must refuse them (C000) without the parser
//! allocating from their declared lengths, keep its peak RSS (VmHWM) small, and keep serving.

use std::path::Path;
use std::time::Duration;

use radroute_e2e::dcmtk::echoscu;
use radroute_e2e::python::{python, raw_store, RawOutcome};
use radroute_e2e::radroute::{Config, Radroute};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const SC: &str = "1.2.840.10008.5.1.4.1.1.7";
const UID: &str = "1.2.826.0.1.3680043.10.1234.1";

/// Peak resident memory of `pid` in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/<pid>/status")
        >> 10
}

/// An Explicit VR Little Endian element (OB, SQ, UN with a 4-byte length; `declared` overrides
/// the length field).
fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr);
    let len = declared.unwrap_or(value.len() as u32);
    if matches!(vr, b"OB" | b"SQ" | b"UN") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// An item (E000), item delimiter (E00D) or sequence delimiter (E0DD) header.
fn item(element: u16, len: u32) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// SOP Class and SOP Instance UID, the start of every data set here.
fn header() -> Vec<u8> {
    let mut uid = UID.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let mut sc = SC.as_bytes().to_vec();
    if sc.len() % 2 == 1 {
        sc.push(0);
    }
    [
        explicit((0x0008, 0x0016), b"UI", &sc, None),
        explicit((0x0008, 0x0018), b"UI", &uid, None),
    ]
    .concat()
}

/// Sends `data` (a bare data set in `ts`) and returns the status.
fn send(r: &Radroute, dir: &Path, name: &str, data: &[u8], ts: &str) -> RawOutcome {
    let file = dir.join(name);
    std::fs::write(&file, data).expect("write data set");
    let (outcome, out) = raw_store(
        r.dicom_port,
        "RADROUTE",
        &file,
        Some(ts),
        Some(SC),
        Some(UID),
        Duration::from_secs(60),
    );
    eprintln!("{name}: {outcome:?}\n{out}");
    outcome
}

fn assert_refused_and_serving(r: &Radroute, outcome: RawOutcome, what: &str) {
    assert!(
        matches!(outcome, RawOutcome::Status(s) if (0xC000..=0xCFFF).contains(&s)),
        "{}",
        r.context(&format!(
            "{what}: expected a C000-class refusal, got {outcome:?}"
        ))
    );
    let (code, out) = echoscu("RADROUTE", r.dicom_port);
    assert!(
        code == Some(0) && out.contains("Received Echo Response (Success)"),
        "{}",
        r.context(&format!("{what}: echoscu must still work:\n{out}"))
    );
}

/// A conformant undefined-length UN (PS3.5 6.2.2: Implicit VR inside). dicom-parser 0.10 reads
/// its items in Explicit VR, so the value "DOE^JOHN" becomes a 4-byte length of 1.58 GB that
/// it zero-fills; the old walk gave up at the UN and let it.
#[test]
fn undefined_length_un_costs_no_memory() {
    let dir = radroute_e2e::test_dir("hostile-un");
    let r = Radroute::start(dir.path(), Config::default());
    let mut data = header();
    let mut content = vec![0x10, 0x00, 0x10, 0x00, 8, 0, 0, 0];
    content.extend_from_slice(b"DOE^JOHN");
    data.extend(explicit((0x0009, 0x1010), b"UN", &[], Some(u32::MAX)));
    data.extend(item(0xE000, content.len() as u32));
    data.extend(content);
    data.extend(item(0xE0DD, 0));
    let outcome = send(&r, dir.path(), "un.dcm", &data, EXPLICIT_LE);
    let peak = peak_rss_mib(r.pid());
    eprintln!("undefined-length UN: VmHWM {peak} MiB");
    assert!(
        peak < 300,
        "{}",
        r.context(&format!(
            "peak RSS {peak} MiB for a {}-byte data set",
            data.len()
        ))
    );
    assert_refused_and_serving(&r, outcome, "undefined-length UN");
}

/// A deflated data set of about 1 MB that inflates to 1 GiB (one OB value of zeros): the
/// parser inflated it as it read and zero-filled the value. Now it is refused past
/// `max_instance_mb` (256 MiB) having been counted, not stored.
#[test]
fn deflate_bomb_is_refused_within_the_cap() {
    let dir = radroute_e2e::test_dir("hostile-deflate");
    let r = Radroute::start(dir.path(), Config::default());
    let mut head = header();
    head.extend(explicit((0x0009, 0x1010), b"OB", &[], Some(1 << 30)));
    let bomb = dir.path().join("bomb.dcm");
    let script = "import sys, zlib\n\
        head = open(sys.argv[1], 'rb').read()\n\
        c = zlib.compressobj(9, zlib.DEFLATED, -15)\n\
        out = [c.compress(head)]\n\
        zeros = bytes(1 << 20)\n\
        for _ in range(1024):\n    out.append(c.compress(zeros))\n\
        out.append(c.flush())\n\
        data = b''.join(out)\n\
        open(sys.argv[2], 'wb').write(data + (b'\\0' if len(data) % 2 else b''))\n";
    let head_file = dir.path().join("head.bin");
    std::fs::write(&head_file, &head).expect("write head");
    let status = std::process::Command::new(python())
        .args(["-c", script])
        .arg(&head_file)
        .arg(&bomb)
        .status()
        .expect("python");
    assert!(status.success());
    let data = std::fs::read(&bomb).expect("bomb");
    assert!(data.len() < 4 << 20, "{} bytes deflated", data.len());
    let outcome = send(&r, dir.path(), "bomb-sent.dcm", &data, DEFLATED);
    let peak = peak_rss_mib(r.pid());
    eprintln!(
        "deflate bomb ({} KiB -> 1 GiB): VmHWM {peak} MiB",
        data.len() >> 10
    );
    assert!(
        peak < 300,
        "{}",
        r.context(&format!("peak RSS {peak} MiB for a deflate bomb"))
    );
    assert_refused_and_serving(&r, outcome, "deflate bomb");
}

/// Sequences nested 50 000 deep (1 MB): dicom-object builds them recursively and overflowed
/// the stack of the thread that parsed them, taking the whole process down.
#[test]
fn deeply_nested_sequences_are_refused_and_the_node_keeps_serving() {
    let dir = radroute_e2e::test_dir("hostile-nesting");
    let r = Radroute::start(dir.path(), Config::default());
    let mut data = header();
    const LEVELS: usize = 50_000;
    for _ in 0..LEVELS {
        data.extend(explicit((0x0040, 0xA730), b"SQ", &[], Some(u32::MAX)));
        data.extend(item(0xE000, u32::MAX));
    }
    for _ in 0..LEVELS {
        data.extend(item(0xE00D, 0));
        data.extend(item(0xE0DD, 0));
    }
    let outcome = send(&r, dir.path(), "nested.dcm", &data, EXPLICIT_LE);
    assert_refused_and_serving(&r, outcome, "nesting");
}

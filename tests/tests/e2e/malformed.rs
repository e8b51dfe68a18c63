//! Issue 2, test 4: every file of malformed/ is sent (one run each); radroute keeps serving,
//! answers each as the table below says, and the next good instance goes through.
//!
//! Files storescu can send (it parses them and can propose their syntax) go through storescu;
//! the others go through tests/scripts/raw_store.py, which sends the file's data set bytes
//! verbatim in one C-STORE so that radroute's own handling of those bytes is what is tested.

use std::collections::BTreeSet;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{raw_store, RawOutcome};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, sample, wait_for};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const SC: &str = "1.2.840.10008.5.1.4.1.1.7";

/// How a file is sent.
enum Send {
    /// storescu with this extra flag (proposes the file's syntax).
    Storescu(&'static str),
    /// raw_store.py; overrides of (transfer syntax, SOP class, SOP instance) where the file meta
    /// lacks them or where the data set's own UID is what a sender would use.
    Raw(
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ),
}

/// What radroute does with it.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Refused with this status; nothing is queued.
    Refused(u16),
    /// Acknowledged (0000) and delivered to the destination as it is.
    Forwarded,
    /// Acknowledged (0000) but never delivered: storescp (even with +xa) does not accept JPEG
    /// lossless process 14 (.57), and radroute does not decompress a corrupt stream into
    /// clean-looking native pixels (issue 10); the job is a dead letter saying so.
    NotDecompressed,
}

struct Case {
    file: &'static str,
    /// The data set's SOP Instance UID as sent in the request (to find it downstream).
    uid: &'static str,
    send: Send,
    expect: Expect,
}

use Expect::*;
use Send::*;

const CASES: &[Case] = &[
    // Native Pixel Data (Explicit VR LE) declared 8192 bytes, file ends early: the data set does
    // not parse. storescu refuses to read the file.
    Case {
        file: "M1_MR_truncated_pixeldata.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
        send: Raw(None, None, None),
        expect: Refused(0xC000),
    },
    // Enhanced MR, JPEG 2000: the pixel fragments end without the Sequence Delimitation Item
    // (truncated). storescu refuses to read it. (Before radroute's length check it was
    // acknowledged, then refused by every destination: dead letter.)
    Case {
        file: "M2_J2K_fragment_too_short.dcm",
        uid: "1.2.826.0.1.3680043.2.1143.6455556726214900995651753669640998622",
        send: Raw(None, None, None),
        expect: Refused(0xC000),
    },
    // CT, JPEG lossless process 14 (.57, which storescu cannot propose) with a corrupt JPEG
    // stream; the data set itself is fine (its UID differs from the file meta's; a sender uses
    // the data set's): stored; the stream decodes to noise, so it is not sent decompressed.
    Case {
        file: "M3_JPEGLossless_bad_stream.dcm",
        uid: "9.99.999.9999",
        send: Raw(None, None, Some("9.99.999.9999")),
        expect: NotDecompressed,
    },
    // No preamble, no file meta, and a stray leading byte: every element is misaligned, one
    // declares a ~1.3 GB value. Sent as Explicit VR LE CT: refused. (Before radroute's length
    // check, dicom-parser allocated and zero-filled the 1.3 GB first: 15-60 s per store.)
    Case {
        file: "M4_no_preamble_no_filemeta.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
        send: Raw(
            Some(EXPLICIT_LE),
            Some(CT),
            Some("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"),
        ),
        expect: Refused(0xC000),
    },
    // File meta without transfer syntax (and empty SOP UIDs); the body is nested undefined-length
    // sequences of invalid group-0001 elements. Sent as Implicit VR LE (the DICOM default): it
    // parses, but holds no SOP Instance UID, so it cannot match the request.
    Case {
        file: "M5_filemeta_missing_transfer_syntax.dcm",
        uid: "1.2.3.4.5",
        send: Raw(Some(IMPLICIT_LE), Some(SC), Some("1.2.3.4.5")),
        expect: Refused(0xA900),
    },
    // RT Dose with a value that does not fit its VR: the data set parses; stored and forwarded.
    // (RT Dose is outside radroute's default SOP classes: the test configures it.)
    Case {
        file: "M6_bad_VR.dcm",
        uid: "1.9.999.999.99.9.9999.9999.20030818153516",
        send: Storescu("-xe"),
        expect: Forwarded,
    },
    // CT JPEG lossless SV1 with a malformed sequence and a non-UID SOP Instance UID: parses;
    // stored and forwarded.
    Case {
        file: "M7_bad_sequence_JPEGLL.dcm",
        uid: "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed",
        send: Storescu("-xs"),
        expect: Forwarded,
    },
    // DX JPEG 2000 lossless with a bad COM marker in the codestream: pixel data is opaque to
    // the store path; stored and forwarded.
    Case {
        file: "M8_DX_J2K_bad_COM_marker.dcm",
        uid: "1.2.392.200046.100.2.1.97028794843.150131102105.1.1.1",
        send: Storescu("-xv"),
        expect: Forwarded,
    },
    // CR JPEG extended whose header (bits, size) disagrees with the JPEG stream: stored and
    // forwarded.
    Case {
        file: "M9_CR_JPEGExtended_header_vs_stream_mismatch.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.10.1.5.20040826185059.5457",
        send: Storescu("-xx"),
        expect: Forwarded,
    },
    // CR JPEG lossless SV1 cut early: a fragment declares 65536 bytes, far fewer follow.
    // storescu refuses to read it. (Was acknowledged, then a dead letter.)
    Case {
        file: "M10_derived_cut_in_header.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.10.1.4.20040826185059.5457",
        send: Raw(None, None, None),
        expect: Refused(0xC000),
    },
    // Same object cut in the middle of a fragment. (Was acknowledged, then a dead letter.)
    Case {
        file: "M11_derived_cut_mid_fragment.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.10.1.4.20040826185059.5457",
        send: Raw(None, None, None),
        expect: Refused(0xC000),
    },
    // Mammogram (SC) JPEG extended, header vs stream mismatch: stored and forwarded.
    Case {
        file: "M12_breast_JPEGExtended_header_vs_stream_mismatch.dcm",
        uid: "1.3.6.1.4.1.5962.1.1.3.1.5.20040826185059.5457",
        send: Storescu("-xx"),
        expect: Forwarded,
    },
];

/// Sends one case and returns the status radroute answered (None: no response).
fn send(r: &Radroute, case: &Case, timeout: Duration) -> (Option<u16>, String) {
    let path = sample(&format!("malformed/{}", case.file));
    match case.send {
        Storescu(flag) => {
            let run = storescu(
                "RADROUTE",
                r.dicom_port,
                &[flag],
                std::slice::from_ref(&path),
            );
            let status = match run.responses.get(&path) {
                Some(Some(s)) if s == "Success" => Some(0),
                Some(Some(s)) => Some(
                    // "Failed: ..." / "Refused: ..." / "Error: ..." with the code in the text, e.g. 0xc000
                    s.split_whitespace()
                        .find_map(|w| {
                            u16::from_str_radix(
                                w.trim_start_matches("0x").trim_end_matches(','),
                                16,
                            )
                            .ok()
                            .filter(|_| w.starts_with("0x"))
                        })
                        .unwrap_or(0xFFFF),
                ),
                _ => None,
            };
            (status, run.log)
        }
        Raw(ts, class, uid) => {
            let (outcome, log) =
                raw_store(r.dicom_port, "RADROUTE", &path, ts, class, uid, timeout);
            let status = match outcome {
                RawOutcome::Status(s) => Some(s),
                _ => None,
            };
            (status, format!("{outcome:?}\n{log}"))
        }
    }
}

#[test]
fn malformed_files_are_refused_or_stored_and_the_node_keeps_serving() {
    let dir = radroute_e2e::test_dir("malformed");
    let good = gen_corpus(&dir.path().join("good"), CASES.len(), 64, 64, 99);
    let sink = StoreScp::start(&dir.path().join("sink"), "SINK", free_port());
    let mut config = Config::default().destination("sink", "SINK", sink.port);
    config.sop_classes = [
        "1.2.840.10008.5.1.4.1.1.1",   // CR
        "1.2.840.10008.5.1.4.1.1.1.1", // DX
        CT,
        "1.2.840.10008.5.1.4.1.1.4",   // MR
        "1.2.840.10008.5.1.4.1.1.4.1", // Enhanced MR
        SC,
        "1.2.840.10008.5.1.4.1.1.481.2", // RT Dose
    ]
    .map(String::from)
    .to_vec();
    let r = Radroute::start(dir.path(), config);

    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let started = std::time::Instant::now();
        let (status, log) = send(&r, case, Duration::from_secs(60));
        let took = started.elapsed();
        let want = match case.expect {
            Refused(s) => s,
            Forwarded | NotDecompressed => 0,
        };
        if status != Some(want) {
            failures.push(format!(
                "{}: expected status {want:04X}, got {status:04X?}\n{log}",
                case.file
            ));
        }
        // A refusal is cheap: no value is allocated for a length the data cannot hold.
        if matches!(case.expect, Refused(_)) && took > Duration::from_secs(10) {
            failures.push(format!("{}: refusal took {took:?}", case.file));
        }
        // The next good instance goes through.
        let g = &good[i].path;
        let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(g));
        if !run.all_ok(std::slice::from_ref(g)) {
            failures.push(format!(
                "good instance after {} not acknowledged:\n{}",
                case.file, run.log
            ));
        }
    }
    assert!(failures.is_empty(), "{}", r.context(&failures.join("\n\n")));

    // Downstream: every good instance and every Forwarded case arrives; refused ones never do.
    let mut want: BTreeSet<String> = good.iter().map(|g| g.sop_instance_uid.clone()).collect();
    want.extend(
        CASES
            .iter()
            .filter(|c| c.expect == Forwarded)
            .map(|c| c.uid.to_string()),
    );
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || want.is_subset(&sink.received()).then_some(()),
        || {
            r.context(&format!(
                "missing at the destination: {:?}",
                want.difference(&sink.received()).collect::<Vec<_>>()
            ))
        },
    );
    let received = sink.received();
    for case in CASES {
        if let Refused(_) = case.expect {
            assert!(
                !received.contains(case.uid),
                "{} was refused but reached the destination",
                case.file
            );
        }
    }
    // Forwarded untouched: the destination's copy of a Forwarded case has the original's
    // transfer syntax and Pixel Data.
    for case in CASES.iter().filter(|c| c.expect == Forwarded) {
        let original = sample(&format!("malformed/{}", case.file));
        let path = sink.file_for(case.uid).expect("forwarded file");
        match (
            radroute_e2e::dicom::summary(&original),
            radroute_e2e::dicom::summary(&path),
        ) {
            (Ok(o), Ok(c)) => {
                assert_eq!(
                    c.transfer_syntax, o.transfer_syntax,
                    "{}: forwarded in another syntax",
                    case.file
                );
                assert!(
                    c.pixels == o.pixels,
                    "{}: Pixel Data changed on the way: {} -> {}",
                    case.file,
                    o.pixels.describe(),
                    c.pixels.describe()
                );
            }
            (o, c) => {
                // dicom-object cannot read one of them: compare the bytes from Pixel Data on.
                eprintln!(
                    "[malformed] {}: byte comparison ({:?} / {:?})",
                    case.file,
                    o.err(),
                    c.err()
                );
                let (a, b) = (
                    radroute_e2e::dicom::pixel_tail(&original),
                    radroute_e2e::dicom::pixel_tail(&path),
                );
                assert!(
                    a.is_some() && a == b,
                    "{}: Pixel Data bytes differ at the destination",
                    case.file
                );
            }
        }
    }

    for case in CASES.iter().filter(|c| c.expect == NotDecompressed) {
        let dead = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                r.queue_list()
                    .into_iter()
                    .find(|j| j["sop_instance_uid"] == case.uid && j["state"] == "dead")
            },
            || r.context(&format!("{}: no dead letter", case.file)),
        );
        assert!(
            dead["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("corrupt")),
            "{}: {dead}",
            case.file
        );
        assert!(
            !sink.received().contains(case.uid),
            "{} reached the destination decompressed",
            case.file
        );
    }

    let jobs = r.queue_list();
    // Refused instances were never queued.
    for case in CASES {
        if let Refused(_) = case.expect {
            assert!(
                !jobs.iter().any(|j| j["sop_instance_uid"] == case.uid),
                "{} was refused but has a job",
                case.file
            );
        }
    }
}

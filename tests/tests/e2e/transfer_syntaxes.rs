//! Issue 2, test 1: dcmtk storescu → radroute → Orthanc, one storescu run per transfer-syntax
//! flag. Every instance must arrive with its SOP Instance UID, byte-identical Pixel Data (native
//! bytes or encapsulated fragments) and, where Orthanc accepts it, the original transfer syntax.
//!
//! The same again with every instance classified: a labelled instance is spooled as a coerced
//! header next to the untouched incoming file, and the forwarder joins the two (spool
//! `header/`); the coerced header (radroute's private block) and the original pixels must both
//! arrive, in every syntax.

use std::time::Duration;

use radroute_e2e::dcmtk::{dcmdump, storescu};
use radroute_e2e::dicom::summary;
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::{sample, wait_for};

use crate::classification::{classify_toml, radroute_private_block};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// (sample file, storescu flag, transfer syntax expected in Orthanc).
const CASES: &[(&str, &str, &str)] = &[
    ("good/01_CT_ExplicitLE_MONO2_16s.dcm", "-xe", EXPLICIT_LE),
    // radroute proposes Explicit and Implicit VR LE in one context and Orthanc picks Explicit,
    // so an implicit instance is re-encoded; Pixel Data must still be identical.
    (
        "good/02_MR_ImplicitLE_MONO2_16s.dcm",
        "-xi",
        "1.2.840.10008.1.2|1.2.840.10008.1.2.1",
    ),
    (
        "good/03_MR_ExplicitBE_MONO2_16s.dcm",
        "-xb",
        "1.2.840.10008.1.2.2",
    ),
    // radroute never deflates on the way out: deflated arrives as Explicit VR LE.
    ("good/04_OT_DeflatedLE_MONO2_8u.dcm", "-xd", EXPLICIT_LE),
    ("good/05_MR_RLE_MONO2_16s.dcm", "-xr", "1.2.840.10008.1.2.5"),
    (
        "good/07_OT_JPEGBaseline_MONO2_8u.dcm",
        "-xy",
        "1.2.840.10008.1.2.4.50",
    ),
    (
        "good/09_NM_JPEGExtended_MONO2_12u.dcm",
        "-xx",
        "1.2.840.10008.1.2.4.51",
    ),
    (
        "good/13_NM_JPEGLosslessSV1_MONO2_16s.dcm",
        "-xs",
        "1.2.840.10008.1.2.4.70",
    ),
    // (27_JPEGLSLossless lacks Patient/Study/Series UIDs: Orthanc itself refuses it with A700.)
    (
        "good/15_CR_hip_JPEGLSLossless_MONO2_10u.dcm",
        "-xt",
        "1.2.840.10008.1.2.4.80",
    ),
    (
        "good/31_CR_tibia_JPEGLSNear_MONO1_10u.dcm",
        "-xu",
        "1.2.840.10008.1.2.4.81",
    ),
    (
        "good/17_CR_tibia_J2KLossless_MONO1_10u.dcm",
        "-xv",
        "1.2.840.10008.1.2.4.90",
    ),
    (
        "good/25_DX_pedpelvis_J2K_RGB_8u.dcm",
        "-xw",
        "1.2.840.10008.1.2.4.91",
    ),
];

#[test]
fn storescu_to_orthanc_keeps_uids_pixels_and_syntax() {
    run_cases("syntaxes", false);
}

#[test]
fn labelled_instances_keep_their_pixels_in_every_syntax() {
    run_cases("syntaxes-labelled", true);
}

fn run_cases(name: &str, labelled: bool) {
    let dir = radroute_e2e::test_dir(name);
    let orthanc = Orthanc::start(&dir.path().join("orthanc"), "ORTHANC");
    let mut config = Config::default();
    if labelled {
        // Every modality, so every case goes through decode, classify and coerce.
        config.extra = classify_toml("always").replace(
            "threads = 1",
            "threads = 1\nmodalities = []\nsop_classes = []",
        );
    }
    let r = Radroute::start(
        dir.path(),
        config.destination("pacs", &orthanc.ae_title, orthanc.dicom_port),
    );

    // One case at a time: 02, 03 and 05 share a SOP Instance UID and Orthanc keeps the first
    // copy, so each verified instance is deleted from Orthanc before the next is sent.
    let mut problems = Vec::new();
    for (file, flag, expected_ts) in CASES {
        let path = sample(file);
        let original = if *flag == "-xd" {
            let inflated = dir.path().join("inflated.dcm");
            radroute_e2e::dcmtk::to_explicit_le(&path, &inflated);
            let mut s = summary(&inflated).expect("read inflated original");
            s.transfer_syntax = "1.2.840.10008.1.2.1.99".into();
            s
        } else {
            summary(&path).expect("read original")
        };
        let run = storescu(
            "RADROUTE",
            r.dicom_port,
            &[flag],
            std::slice::from_ref(&path),
        );
        assert!(
            run.all_ok(std::slice::from_ref(&path)),
            "{}",
            r.context(&format!(
                "storescu {flag} {file} was not acknowledged:\n{}",
                run.log
            ))
        );
        let id = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || orthanc.lookup(&original.sop_instance_uid),
            || {
                r.context(&format!(
                    "{file} ({}) did not reach Orthanc; Orthanc log:\n{}",
                    original.sop_instance_uid,
                    orthanc.log_tail(10)
                ))
            },
        );
        let got_path = dir.path().join(format!("from-orthanc-{id}.dcm"));
        std::fs::write(&got_path, orthanc.file(&id)).unwrap();
        let got = summary(&got_path).expect("read Orthanc's copy");
        if got.sop_instance_uid != original.sop_instance_uid {
            problems.push(format!(
                "{file}: SOP Instance UID {} != {}",
                got.sop_instance_uid, original.sop_instance_uid
            ));
        }
        if !expected_ts.split('|').any(|ts| ts == got.transfer_syntax) {
            problems.push(format!(
                "{file} ({flag}): arrived as {} (original {}), expected {expected_ts}",
                got.transfer_syntax, original.transfer_syntax
            ));
        }
        // Orthanc's record of the syntax it received must agree with the file it serves.
        let received_ts = orthanc.transfer_syntax(&id);
        if received_ts != got.transfer_syntax {
            problems.push(format!(
                "{file}: Orthanc metadata says {received_ts}, file says {}",
                got.transfer_syntax
            ));
        }
        if got.pixels != original.pixels {
            problems.push(format!(
                "{file}: Pixel Data differs: original {}, Orthanc {}",
                original.pixels.describe(),
                got.pixels.describe()
            ));
        }
        if labelled {
            let dump = dcmdump(&got_path);
            if radroute_private_block(&dump).is_empty() {
                problems.push(format!(
                    "{file} ({flag}): arrived without radroute's private block (not coerced)"
                ));
            }
        }
        eprintln!(
            "[{name}] {file} {flag}: {} -> {} ({})",
            original.transfer_syntax,
            got.transfer_syntax,
            got.pixels.describe()
        );
        orthanc.delete(&id);
    }
    assert!(problems.is_empty(), "{}", r.context(&problems.join("\n")));
}

//! Issue 2, forwarding: a destination that accepts only Implicit VR Little Endian (storescp
//! `+xi`, as some older PACS) still receives explicit-VR and compressed instances, converted to
//! Implicit VR Little Endian, with the same SOP Instance UIDs and the same pixels.

use std::collections::BTreeSet;
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::dicom::{summary, Pixels};
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{samples_dir, wait_for};

#[test]
fn implicit_only_destination_gets_converted_instances() {
    let dir = radroute_e2e::test_dir("implicit");
    let sink =
        StoreScp::start_with_args(&dir.path().join("sink"), "OLDPACS", free_port(), &["+xi"]);
    let r = Radroute::start(
        dir.path(),
        Config::default().destination("old", "OLDPACS", sink.port),
    );
    let good = samples_dir().join("good");
    let explicit = good.join("01_CT_ExplicitLE_MONO2_16s.dcm");
    let jpeg_ll = good.join("11_CR_hip_JPEGLosslessSV1_MONO2_10u.dcm");
    for (flags, file) in [(&[][..], &explicit), (&["-xs"][..], &jpeg_ll)] {
        let run = storescu("RADROUTE", r.dicom_port, flags, std::slice::from_ref(file));
        assert!(
            run.all_ok(std::slice::from_ref(file)),
            "{}",
            r.context(&run.log)
        );
    }
    let expected: BTreeSet<String> = [&explicit, &jpeg_ll]
        .iter()
        .map(|f| radroute_e2e::dicom::sop_instance_uid(f))
        .collect();
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (sink.received() == expected).then_some(()),
        || r.context(&format!("implicit-only sink got {:?}", sink.received())),
    );
    for original in [&explicit, &jpeg_ll] {
        let uid = radroute_e2e::dicom::sop_instance_uid(original);
        let got = sink.file_for(&uid).expect("received file");
        let received = summary(&got).expect("readable");
        assert_eq!(
            received.transfer_syntax, "1.2.840.10008.1.2",
            "{uid}: not implicit VR LE"
        );
        match (&received.pixels, original == &explicit) {
            // Same native values, re-encoded with implicit VR.
            (pixels, true) => assert_eq!(pixels, &summary(original).expect("readable").pixels),
            // Decompressed: native pixels of 2 bytes each.
            (Pixels::Native(bytes), false) => assert!(!bytes.is_empty() && bytes.len() % 2 == 0),
            (other, false) => panic!("{uid}: expected native pixels, got {}", other.describe()),
        }
    }
}

//! The shipped model's manifest against the CID 4031 table (src/anatomy.rs): every class must
//! carry the Body Part Examined defined term and the SNOMED CT code the standard pairs, because
//! radroute writes them into every labelled header and a wrong code is worse than none. Also
//! checks the tiny test model, which the e2e tests label with.

use std::path::PathBuf;

use radroute_classify::Manifest;
use radroute_coerce::anatomy;

fn check(dir: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = Manifest::load(&root.join(dir)).expect("manifest loads");
    for class in &manifest.classes {
        let region = anatomy::region(&class.body_part).unwrap_or_else(|| {
            panic!(
                "{dir}: class {:?} writes {:?}, which is not in the CID 4031 table",
                class.name, class.body_part
            )
        });
        assert_eq!(
            class.snomed, region.snomed,
            "{dir}: class {:?} ({}) has SNOMED CT {}; CID 4031 gives {} ({})",
            class.name, class.body_part, class.snomed, region.snomed, region.meaning
        );
    }
}

#[test]
fn shipped_model_writes_the_standard_codes() {
    check("models/bodypart");
}

#[test]
fn tiny_test_model_writes_the_standard_codes() {
    check("tests/fixtures/models/tiny");
}

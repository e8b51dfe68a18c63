use radroute_e2e::radroute::{Config, Radroute};

#[test]
fn starts_and_answers_echo() {
    let dir = radroute_e2e::test_dir("smoke");
    let r = Radroute::start(dir.path(), Config::default());
    let (code, out) = radroute_e2e::dcmtk::echoscu("RADROUTE", r.dicom_port);
    assert_eq!(code, Some(0), "{}", r.context(&out));
}

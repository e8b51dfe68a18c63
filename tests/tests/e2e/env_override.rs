//! Issue 2, test 6: `RADROUTE__NODE__AE_TITLE` and `RADROUTE__NODE__LISTEN` override the file.

use radroute_e2e::dcmtk::echoscu;
use radroute_e2e::ports::{free_port, is_listening};
use radroute_e2e::radroute::{Config, Radroute};

#[test]
fn environment_overrides_ae_title_and_listen_address() {
    let dir = radroute_e2e::test_dir("env");
    let config = Config {
        ae_title: "FILEAE".into(),
        require_called_ae_title: true, // so the AE title in effect is observable
        ..Config::default()
    };
    let file_port = config.port;
    let env_port = free_port();
    let listen = format!("127.0.0.1:{env_port}");
    let r = Radroute::start_with_env(
        dir.path(),
        config,
        &[
            ("RADROUTE__NODE__AE_TITLE", "ENVAE"),
            ("RADROUTE__NODE__LISTEN", &listen),
        ],
        Some(env_port),
    );

    assert!(
        !is_listening(file_port),
        "{}",
        r.context("the file's listen port must not be used")
    );
    let (code, out) = echoscu("ENVAE", env_port);
    assert_eq!(
        code,
        Some(0),
        "{}",
        r.context(&format!("echo to ENVAE on the env port:\n{out}"))
    );
    let (code, out) = echoscu("FILEAE", env_port);
    assert_ne!(
        code,
        Some(0),
        "{}",
        r.context(&format!("the file's AE title must be overridden:\n{out}"))
    );
    assert!(out.contains("Association Rejected"), "{}", r.context(&out));
}

//! Issue 10, correctness: what radroute does must be what the configuration says.
//!
//! - `check-config` refuses values that would panic or misbehave at start (`inf`/`nan`/negative
//!   retry delays, `max_pdu` outside its range, unreachable ports, a number where a path
//!   belongs), and `serve` refuses the same files with the same message; a route on a label the
//!   model never gives is a warning.
//! - Study-scope routes apply their `set` / `remove` edits to every instance of the study.
//! - Corrupt compressed pixels never leave as clean-looking uncompressed pixels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use radroute_e2e::dcmtk::run_bounded;
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{binary, Config};

use crate::classification::classify_toml;

/// A generated configuration for `dir`, changed by `edit`, written to `dir/<name>.toml`.
fn config_file(
    dir: &Path,
    name: &str,
    config: &Config,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let text = config.to_toml(dir);
    let changed = edit(text.clone());
    assert_ne!(changed, text, "{name}: the edit changed nothing");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, changed).expect("write config");
    path
}

/// `radroute <args> <file>`: exit code and output (stdout then stderr).
fn radroute(args: &[&str], file: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg(file);
    run_bounded(cmd, Duration::from_secs(20))
}

#[test]
fn check_config_and_serve_refuse_values_that_cannot_work() {
    let dir = radroute_e2e::test_dir("check-config");
    let d = dir.path();
    let pacs = free_port();
    let config = Config::default().destination("pacs", "PACS", pacs);
    let pacs_address = format!("address = \"127.0.0.1:{pacs}\"");
    // (name, edit of the generated file, what the refusal must name)
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "backoff-inf",
            Box::new(|t| t.replace("backoff_max_secs = 1.0", "backoff_max_secs = inf")),
            "queue.backoff_max_secs",
        ),
        (
            "backoff-nan",
            Box::new(|t| t.replace("backoff_base_secs = 0.2", "backoff_base_secs = nan")),
            "queue.backoff_base_secs",
        ),
        (
            "backoff-negative",
            Box::new(|t| t.replace("backoff_base_secs = 0.2", "backoff_base_secs = -3.0")),
            "queue.backoff_base_secs",
        ),
        (
            "max-pdu-zero",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 0\n")),
            "node.max_pdu",
        ),
        (
            "max-pdu-tiny",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 100\n")),
            "node.max_pdu",
        ),
        (
            "max-pdu-huge",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 4294967295\n")),
            "node.max_pdu",
        ),
        (
            "port-99999",
            Box::new({
                let a = pacs_address.clone();
                move |t| t.replace(&a, "address = \"127.0.0.1:99999\"")
            }),
            "destinations[0] (pacs)",
        ),
        (
            "port-0",
            Box::new({
                let a = pacs_address.clone();
                move |t| t.replace(&a, "address = \"127.0.0.1:0\"")
            }),
            "destinations[0] (pacs)",
        ),
        (
            "spool-dir-number",
            Box::new(|t| {
                let line = t
                    .lines()
                    .find(|l| l.starts_with("dir = "))
                    .expect("spool.dir line")
                    .to_string();
                t.replace(&line, "dir = 5")
            }),
            "spool.dir",
        ),
    ];
    for (name, edit, names) in &cases {
        let file = config_file(d, name, &config, edit);
        let (code, out) = radroute(&["check-config"], &file);
        assert_eq!(code, Some(1), "check-config accepted {name}:\n{out}");
        let message = out
            .lines()
            .find(|l| l.contains(names))
            .unwrap_or_else(|| panic!("{name}: no line names {names}:\n{out}"))
            .to_string();
        // serve goes through the same validation: same refusal, same words, nothing started.
        let (code, served) = radroute(&["serve", "--config"], &file);
        assert_eq!(code, Some(1), "serve with {name}:\n{served}");
        assert!(
            served.contains(&message),
            "{name}: serve refused otherwise than check-config ({message:?}):\n{served}"
        );
        assert!(!served.contains("panicked"), "{name}:\n{served}");
    }
    // The generated file itself is fine.
    let ok = d.join("ok.toml");
    std::fs::write(&ok, config.to_toml(d)).expect("write");
    let (code, out) = radroute(&["check-config"], &ok);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn check_config_warns_about_labels_the_model_never_gives() {
    let dir = radroute_e2e::test_dir("check-config-labels");
    let d = dir.path();
    let routes = r#"
[[routes]]
name = "feet"
when.label = "FOOT"
destinations = ["pacs"]

[[routes]]
name = "hands"
when.label = ["HAND", "none"]
destinations = ["pacs"]

[[routes]]
destinations = ["pacs"]
"#;
    let config = Config {
        extra: classify_toml("if-empty"),
        routes: Some(routes.into()),
        ..Config::default()
    }
    .destination("pacs", "PACS", free_port());
    let file = d.join("labels.toml");
    std::fs::write(&file, config.to_toml(d)).expect("write");
    let (code, out) = radroute(&["check-config"], &file);
    // A warning, not a refusal: the model may be replaced by one that has the label.
    assert_eq!(code, Some(0), "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("feet") && warnings[0].contains("\"FOOT\""),
        "{out}"
    );
}

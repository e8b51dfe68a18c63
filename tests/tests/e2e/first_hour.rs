//! Issue 11, "the first hour, tried as a new user would": the README tour works as written,
//! the CLI's rough edges (check-config's arguments, queue's hint, classify's rows, colours in
//! files) are smoothed, placeholders among the destinations are called out at start-up, and
//! deploy/quickstart.sh says when it is ready.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{binary, metric, Config, Radroute};
use radroute_e2e::{sample, wait_for, workspace_root};

/// Runs the radroute binary with `args` in `cwd` (stdout, stderr piped, never a terminal).
fn radroute(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.current_dir(cwd).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run radroute");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).expect("read README.md")
}

/// The README's tour section.
fn tour() -> String {
    let text = readme();
    let start = text.find("## A short tour").expect("README has a tour");
    let end = text[start + 3..]
        .find("\n## ")
        .map_or(text.len(), |i| start + 3 + i);
    text[start..end].to_string()
}

/// The line of `section` that starts (after whitespace and `TCP_NODELAY=1 `) with `command`.
fn command_line(section: &str, command: &str) -> String {
    section
        .lines()
        .map(|l| l.trim().trim_start_matches("TCP_NODELAY=1 "))
        .find(|l| l.starts_with(command))
        .unwrap_or_else(|| panic!("README tour has no `{command}` line"))
        .split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The tour as a new user follows it: its configuration (ports and folders moved to the
/// test's), its check-config line, its dcmodify and storescu lines on the hand sample; the
/// hand whose Body Part Examined was erased arrives in Orthanc labelled HAND.
#[test]
fn readme_tour_labels_a_hand_whose_header_was_empty() {
    let dir = radroute_e2e::test_dir("tour");
    let d = dir.path();
    let tour = tour();
    let pacs = Orthanc::start(&d.join("orthanc"), "ORTHANC");
    let port = free_port();
    let admin = free_port();
    let toml_start = tour.find("```toml\n").expect("tour has a TOML block") + 8;
    let toml_end = toml_start + tour[toml_start..].find("```").expect("block ends");
    let cfg = tour[toml_start..toml_end]
        .replace("127.0.0.1:11112", &format!("127.0.0.1:{port}"))
        .replace(
            "\"/tmp/radroute\"",
            &format!("{:?}", d.join("spool").display().to_string()),
        )
        .replace("127.0.0.1:4242", &format!("127.0.0.1:{}", pacs.dicom_port))
        .replace(
            "\"models/bodypart\"",
            &format!(
                "{:?}",
                workspace_root()
                    .join("models/bodypart")
                    .display()
                    .to_string()
            ),
        );
    assert!(
        cfg.contains("[classify]"),
        "the tour configures classification:\n{cfg}"
    );
    let cfg = format!("{cfg}[admin]\nlisten = \"127.0.0.1:{admin}\"\n");
    std::fs::write(d.join("radroute.toml"), &cfg).expect("write tour config");

    let check = command_line(&tour, "target/release/radroute check-config");
    let args: Vec<&str> = check.split_whitespace().skip(1).collect();
    let (code, out, err) = radroute(d, &args, &[]);
    assert_eq!(code, 0, "{check}: {out}{err}");
    assert!(
        out.contains("classification: on"),
        "{check} says classification is on:\n{out}"
    );

    let mut serve = Command::new(binary());
    serve
        .current_dir(d)
        .args(["serve", "--config", "radroute.toml"]);
    let daemon = radroute_e2e::process::Daemon::spawn("radroute", serve, &d.join("radroute.log"));
    let context = |what: &str| format!("{what}\nradroute log:\n{}", daemon.log_tail(40));
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || radroute_e2e::ports::is_listening(port).then_some(()),
        || context("radroute did not listen"),
    );

    // dcmodify and storescu exactly as the README writes them, on the hand sample.
    std::fs::copy(
        sample("good/22_CR_hand_J2KLossless_MONO2_12u_SOTquirk.dcm"),
        d.join("hand.dcm"),
    )
    .expect("copy hand sample");
    for (line, from, to) in [
        (command_line(&tour, "dcmodify"), "", ""),
        (
            command_line(&tour, "storescu -xv"),
            "127.0.0.1 11112",
            &*format!("127.0.0.1 {port}"),
        ),
    ] {
        let line = if from.is_empty() {
            line
        } else {
            line.replace(from, to)
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("PATH=/usr/bin:$PATH TCP_NODELAY=1 {line}"))
            .current_dir(d)
            .output()
            .expect("run sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{}",
            context(&format!("`{line}` failed:\n{text}"))
        );
        assert!(!text.contains("unable to convert"), "{line}: {text}");
    }
    let uid = radroute_e2e::dicom::sop_instance_uid(&d.join("hand.dcm"));
    let id = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || pacs.lookup(&uid),
        || context("the tour's hand did not reach Orthanc"),
    );
    let tags = pacs.tags(&id);
    assert_eq!(
        tags["BodyPartExamined"],
        "HAND",
        "{}",
        context(&tags.to_string())
    );
}

/// check-config takes `--config FILE` like serve and queue (and still the positional file),
/// and says whether classification is on and with which model.
#[test]
fn check_config_accepts_both_forms_and_names_the_model() {
    let dir = radroute_e2e::test_dir("checkcfg");
    let d = dir.path();
    let plain = Config::default().destination("pacs", "PACS", free_port());
    std::fs::write(d.join("off.toml"), plain.to_toml(d)).expect("write");
    let with_model = format!(
        "{}[classify]\nmodel = {:?}\n",
        plain.to_toml(d),
        workspace_root()
            .join("models/bodypart")
            .display()
            .to_string()
    );
    std::fs::write(d.join("on.toml"), with_model).expect("write");

    for args in [
        vec!["check-config", "--config", "on.toml"],
        vec!["check-config", "on.toml"],
    ] {
        let (code, out, err) = radroute(d, &args, &[]);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("classification: on"), "{args:?}:\n{out}");
        assert!(
            out.contains("bodypart"),
            "names the model: {args:?}:\n{out}"
        );
    }
    let (code, out, err) = radroute(d, &["check-config", "--config", "off.toml"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("classification: off"), "{out}");
    let (code, _, err) = radroute(d, &["check-config", "a.toml", "--config", "b.toml"], &[]);
    assert_ne!(code, 0, "two different files must be refused: {err}");
}

/// `queue counts` on a spool that does not exist says what to do, and names the path once.
#[test]
fn queue_counts_on_a_missing_spool_gives_a_hint() {
    let dir = radroute_e2e::test_dir("queuehint");
    let d = dir.path();
    // A valid configuration whose spool folder does not exist (as after quickstart, which
    // moves it with RADROUTE__SPOOL__DIR).
    let cfg = Config::default()
        .destination("pacs", "PACS", free_port())
        .to_toml(&d.join("nowhere"));
    let missing = d.join("nowhere").join("spool");
    std::fs::write(d.join("r.toml"), cfg).expect("write");
    let (code, out, err) = radroute(d, &["queue", "counts", "--config", "r.toml"], &[]);
    assert_ne!(code, 0, "{out}");
    let shown = missing.display().to_string();
    assert_eq!(err.matches(&shown).count(), 1, "the path once:\n{err}");
    assert!(err.contains("RADROUTE__SPOOL__DIR"), "a hint:\n{err}");
}

/// Output that is not a terminal carries no ANSI colour codes (logs into files); NO_COLOR is
/// honoured.
#[test]
fn logs_are_not_coloured_into_files() {
    let dir = radroute_e2e::test_dir("nocolor");
    let r = Radroute::start(dir.path(), Config::default());
    let raw = std::fs::read_to_string(r.log_path()).expect("log");
    assert!(raw.contains("INFO"), "{raw}");
    assert!(
        !raw.contains('\u{1b}'),
        "ANSI codes in the log file:\n{raw}"
    );
}

/// Each destination that does not resolve or does not answer C-ECHO is named in a warning at
/// start-up, and `radroute_destination_reachable` says which are reachable.
#[test]
fn unreachable_destinations_are_called_out_at_start() {
    let dir = radroute_e2e::test_dir("reach");
    let d = dir.path();
    let pacs = Orthanc::start(&d.join("orthanc"), "ORTHANC");
    let mut cfg = Config::default()
        .destination("real", "ORTHANC", pacs.dicom_port)
        .destination("closed", "NOBODY", free_port());
    cfg.extra.push_str(
        "[[destinations]]\nname = \"placeholder\"\nae_title = \"PACS\"\naddress = \"pacs.example.invalid:104\"\n",
    );
    let r = Radroute::start(d, cfg);
    let metrics = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let m = r.metrics();
            let v = |d: &str| metric(&m, "radroute_destination_reachable", &[("destination", d)]);
            (v("real") == Some(1.0) && v("closed") == Some(0.0) && v("placeholder") == Some(0.0))
                .then_some(m)
        },
        || r.context(&format!("reachability gauges:\n{}", r.metrics())),
    );
    assert!(metrics.contains("radroute_destination_reachable"));
    let log = r.log();
    for name in ["closed", "placeholder"] {
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("unreachable") && l.contains(name)),
            "{}",
            r.context(&format!("no start-up warning naming {name}"))
        );
    }
    assert!(
        !log.lines()
            .any(|l| l.contains("unreachable") && l.contains("destination=real")),
        "{}",
        r.context("the reachable destination was called unreachable")
    );
}

/// `radroute classify`: a missing file is a row, not an abort; a CT gets a warning in its row;
/// an abstained row says so instead of presenting a near-zero score as its top; outside the
/// repository the error suggests --model. Uses the tiny test model (it labels a horizontal
/// gradient HAND and abstains on a flat image).
#[test]
fn classify_reports_rows_warns_on_ct_and_suggests_model() {
    let dir = radroute_e2e::test_dir("classifycli");
    let d = dir.path();
    let root = workspace_root();
    let model = root
        .join("tests/fixtures/models/tiny")
        .display()
        .to_string();
    let f = |n: &str| d.join("in").join(n);
    let (hand, flat, ct, missing) = (
        f("hand.dcm"),
        f("flat.dcm"),
        f("ct.dcm"),
        d.join("missing.dcm"),
    );
    make_instances(&[
        (&hand, Instance::default()),
        (
            &flat,
            Instance {
                pattern: "flat",
                ..Instance::default()
            },
        ),
        (
            &ct,
            Instance {
                modality: "CT",
                ..Instance::default()
            },
        ),
    ]);
    let paths: Vec<String> = [&hand, &flat, &ct, &missing]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["classify", "--model", model.as_str()];
    args.extend(paths.iter().map(String::as_str));
    let (code, out, err) = radroute(&root, &args, &[]);
    assert_eq!(code, 2, "a file failed: exit 2\n{out}{err}");
    let row = |p: &PathBuf| {
        out.lines()
            .find(|l| l.contains(&*p.display().to_string()))
            .unwrap_or_else(|| panic!("no row for {}:\n{out}\n{err}", p.display()))
            .to_string()
    };
    assert!(row(&hand).starts_with("HAND"), "{out}");
    assert!(
        !row(&hand).contains("warning"),
        "a CR gets no warning: {out}"
    );
    assert!(row(&missing).starts_with("ERROR"), "{out}");
    assert!(row(&ct).contains("not CR/DX"), "{out}");
    let abstained = row(&flat);
    assert!(abstained.starts_with('-'), "{out}");
    assert!(
        abstained.contains("abstain"),
        "the abstained row says so: {abstained}"
    );
    assert!(abstained.contains("highest score"), "{abstained}");
    assert!(err.contains("4 files"), "{err}");

    // Outside the repository the default model path does not exist: say what to pass.
    let (code, _, err) = radroute(d, &["classify", &paths[0]], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--model"), "{err}");
}

/// deploy/quickstart.sh says what it is doing and prints a "ready" banner with commands to
/// try once radroute serves (setup and build skipped: the debug binary is used).
#[test]
fn quickstart_prints_a_ready_banner() {
    let dir = radroute_e2e::test_dir("quickstart");
    let port = free_port();
    let admin = free_port();
    let out_path = dir.path().join("quickstart.out");
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("deploy/quickstart.sh"))
        .env("QUICKSTART_SKIP_SETUP", "1")
        .env("QUICKSTART_BIN", binary())
        .env("QUICKSTART_RUN_DIR", dir.path().join("run"))
        .env("RADROUTE__NODE__LISTEN", format!("127.0.0.1:{port}"))
        .env("RADROUTE__ADMIN__LISTEN", format!("127.0.0.1:{admin}"));
    let mut daemon = radroute_e2e::process::Daemon::spawn("quickstart", cmd, &out_path);
    let text = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let t = std::fs::read_to_string(&out_path).unwrap_or_default();
            t.contains("ready:").then_some(t)
        },
        || {
            format!(
                "no ready banner:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            )
        },
    );
    assert!(
        text.contains(&format!("echoscu -aec RADROUTE 127.0.0.1 {port}")),
        "{text}"
    );
    assert!(text.contains("storescu -aec RADROUTE -xv"), "{text}");
    assert!(text.contains("==> checking"), "says what it does:\n{text}");
    assert!(
        daemon.signal_and_wait(15, Duration::from_secs(20)),
        "quickstart stops on SIGTERM"
    );
}

//! Issue 5, rules against real peers: storescu in (several calling / called AE titles), storescp
//! sinks out. Two daemon runs, each with a table of cases:
//!
//! * first-match: every condition kind (calling AE, called AE, source CIDR, time window that
//!   always / never matches, attribute equals / regex / exists by keyword and by tag, modality,
//!   label with min_confidence, label "none"), the actions (several destinations, set, remove,
//!   priority, drop) and the fallback. Each route sets StudyDescription to its name, so the file a
//!   sink receives says which route decided; `set` / `remove` are checked in the Original
//!   Attributes Sequence with dcmdump; the priority in storescp's DIMSE debug log (a separate
//!   test).
//! * all-matches: destinations and edits of every matching route accumulate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use radroute_e2e::dcmtk::{dcmdump, run_bounded, tool};
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

use crate::classification::classify_toml;

/// A weekday name (`mon` …) `days` days from now, local time (the daemon's clock too).
fn weekday_in(days: u32) -> String {
    let mut cmd = Command::new("date");
    cmd.arg("-d").arg(format!("+{days} days")).arg("+%a");
    let (_, out) = run_bounded(cmd, Duration::from_secs(5));
    out.trim().to_ascii_lowercase()
}

/// storescu with a calling and called AE title; every file must be acknowledged.
fn send(r: &Radroute, calling: &str, called: &str, files: &[PathBuf]) {
    let mut cmd = Command::new(tool("storescu"));
    cmd.args([
        "-v", "-nh", "-aet", calling, "-aec", called, "-to", "10", "-ta", "10", "-td", "30",
    ])
    .arg("127.0.0.1")
    .arg(r.dicom_port.to_string())
    .args(files);
    let (code, log) = run_bounded(cmd, Duration::from_secs(120));
    let ok = radroute_e2e::dcmtk::parse_storescu_log(&log);
    assert!(
        code == Some(0)
            && files
                .iter()
                .all(|f| ok.get(f).cloned().flatten().as_deref() == Some("Success")),
        "{}",
        r.context(&format!("storescu {calling}->{called}:\n{log}"))
    );
}

/// StudyDescription (0008,1030) at the top level of a dcmdump.
fn study_description(dump: &str) -> Option<String> {
    dump.lines()
        .find(|l| l.starts_with("(0008,1030)"))
        .and_then(|l| Some(l[l.find('[')? + 1..l.find(']')?].to_string()))
}

struct Case {
    name: &'static str,
    calling: &'static str,
    called: &'static str,
    spec: Instance<'static>,
    /// Sinks that must receive it (empty: dropped).
    sinks: &'static [&'static str],
    /// StudyDescription expected downstream (the deciding route's name).
    description: &'static str,
}

#[test]
fn first_match_conditions_actions_and_fallback() {
    let dir = radroute_e2e::test_dir("rules1");
    let d = dir.path();
    let names = ["a", "b", "p", "fb"];
    let sinks: BTreeMap<&str, StoreScp> = names
        .iter()
        .map(|n| {
            let ae = format!("SINK{}", n.to_ascii_uppercase());
            (
                *n,
                StoreScp::start(&d.join(format!("sink-{n}")), &ae, free_port()),
            )
        })
        .collect();
    let never_day = weekday_in(2);
    let routes = format!(
        r#"
[routing]
mode = "first-match"
fallback = ["fb"]

[[routes]]
name = "drop-qa"
when.calling_ae = ["QA"]
drop = true

[[routes]]
name = "never"
when.time = {{ days = ["{never_day}"] }}
destinations = ["a"]
set = {{ StudyDescription = "never" }}

[[routes]]
name = "called"
when.called_ae = "OTHERAE"
destinations = ["a"]
set = {{ StudyDescription = "called" }}

[[routes]]
name = "calling"
when.calling_ae = ["MODX", "MODY"]
destinations = ["a"]
set = {{ StudyDescription = "calling" }}

[[routes]]
name = "source-miss"
when.source = ["10.0.0.0/8", "192.168.0.0/16"]
destinations = ["a"]
set = {{ StudyDescription = "source-miss" }}

[[routes]]
name = "attr-eq-kw"
when.attribute = [{{ tag = "InstitutionName", equals = "EQ HOSP" }}]
destinations = ["a", "b"]
set = {{ StudyDescription = "attr-eq-kw" }}

[[routes]]
name = "attr-eq-tag"
when.attribute = [{{ tag = "(0008,1010)", equals = "ST2" }}]
destinations = ["p"]
set = {{ StudyDescription = "attr-eq-tag" }}
priority = "high"

[[routes]]
name = "attr-regex"
when.attribute = [{{ tag = "InstitutionName", regex = "^St\\.? Elsewhere" }}]
destinations = ["a"]
set = {{ StudyDescription = "attr-regex" }}

[[routes]]
name = "attr-exists"
when.attribute = [{{ tag = "(0010,4000)", exists = true }}]
destinations = ["a"]
set = {{ StudyDescription = "attr-exists" }}
remove = ["PatientComments"]

[[routes]]
name = "modality"
when.modality = ["DX"]
destinations = ["b"]
set = {{ StudyDescription = "modality" }}

[[routes]]
name = "label-sure"
when.label = "HAND"
when.min_confidence = 0.99
destinations = ["a"]
set = {{ StudyDescription = "label-sure" }}

[[routes]]
name = "label-hand"
when.label = ["KNEE", "HAND"]
when.min_confidence = 0.8
destinations = ["b"]
set = {{ StudyDescription = "label-hand" }}

[[routes]]
name = "label-none"
when.label = "none"
when.attribute = [{{ tag = "AccessionNumber", equals = "NONE1" }}]
destinations = ["a"]
set = {{ StudyDescription = "label-none" }}

[[routes]]
name = "source-time"
when.source = "127.0.0.0/8"
when.time = {{ from = "00:00", to = "24:00" }}
when.attribute = [{{ tag = "AccessionNumber", equals = "SRC" }}]
destinations = ["b"]
set = {{ StudyDescription = "source-time" }}

[[routes]]
name = "edit-only"
stop = false
when.attribute = [{{ tag = "AccessionNumber", equals = "FB" }}]
set = {{ StudyDescription = "edit-only" }}
"#
    );
    let mut config = Config {
        extra: classify_toml("if-empty"),
        routes: Some(routes),
        ..Config::default()
    };
    for n in names {
        config = config.destination(n, &sinks[n].ae_title, sinks[n].port);
    }
    let r = Radroute::start(d, config);

    let flat = |set: &'static [(&'static str, &'static str)]| Instance {
        pattern: "flat",
        set,
        ..Instance::default()
    };
    let base: &[(&str, &str)] = &[("StudyDescription", "orig")];
    let cases = vec![
        Case {
            name: "drop",
            calling: "QA",
            called: "RADROUTE",
            spec: flat(base),
            sinks: &[],
            description: "",
        },
        Case {
            name: "called",
            calling: "STORESCU",
            called: "OTHERAE",
            spec: flat(base),
            sinks: &["a"],
            description: "called",
        },
        Case {
            name: "calling",
            calling: "MODY",
            called: "RADROUTE",
            spec: flat(base),
            sinks: &["a"],
            description: "calling",
        },
        // Also matches attr-eq-tag below: first match decides.
        Case {
            name: "eq-kw",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[
                ("StudyDescription", "orig"),
                ("InstitutionName", "EQ HOSP"),
                ("StationName", "ST2"),
            ]),
            sinks: &["a", "b"],
            description: "attr-eq-kw",
        },
        Case {
            name: "eq-tag",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[("StudyDescription", "orig"), ("StationName", "ST2")]),
            sinks: &["p"],
            description: "attr-eq-tag",
        },
        Case {
            name: "regex",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[
                ("StudyDescription", "orig"),
                ("InstitutionName", "St Elsewhere General"),
            ]),
            sinks: &["a"],
            description: "attr-regex",
        },
        Case {
            name: "regex-miss",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[
                ("StudyDescription", "orig"),
                ("InstitutionName", "Not St Elsewhere"),
            ]),
            sinks: &["fb"],
            description: "orig",
        },
        Case {
            name: "exists",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[
                ("StudyDescription", "orig"),
                ("PatientComments", "remove me"),
            ]),
            sinks: &["a"],
            description: "attr-exists",
        },
        Case {
            name: "modality",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: Instance {
                modality: "DX",
                pattern: "flat",
                set: base,
                ..Instance::default()
            },
            sinks: &["b"],
            description: "modality",
        },
        Case {
            name: "label",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: Instance {
                set: base,
                ..Instance::default()
            },
            sinks: &["b"],
            description: "label-hand",
        },
        Case {
            name: "none",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[("StudyDescription", "orig"), ("AccessionNumber", "NONE1")]),
            sinks: &["a"],
            description: "label-none",
        },
        Case {
            name: "source-time",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[("StudyDescription", "orig"), ("AccessionNumber", "SRC")]),
            sinks: &["b"],
            description: "source-time",
        },
        Case {
            name: "edit-fallback",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(&[("StudyDescription", "orig"), ("AccessionNumber", "FB")]),
            sinks: &["fb"],
            description: "edit-only",
        },
        Case {
            name: "nothing",
            calling: "STORESCU",
            called: "RADROUTE",
            spec: flat(base),
            sinks: &["fb"],
            description: "orig",
        },
    ];
    let paths: Vec<PathBuf> = cases
        .iter()
        .map(|c| d.join("in").join(format!("{}.dcm", c.name)))
        .collect();
    let studies: Vec<String> = (0..cases.len())
        .map(|i| format!("1.2.826.0.1.3680043.8.498.4242.{}", i + 1))
        .collect();
    let specs: Vec<Instance> = cases
        .iter()
        .zip(&studies)
        .map(|(c, s)| Instance {
            study: Some(s.as_str()),
            ..c.spec.clone()
        })
        .collect();
    let uids = make_instances(
        &paths
            .iter()
            .map(PathBuf::as_path)
            .zip(specs)
            .collect::<Vec<_>>(),
    );

    // One storescu run per (calling, called) pair.
    let mut groups: BTreeMap<(&str, &str), Vec<PathBuf>> = BTreeMap::new();
    for (c, p) in cases.iter().zip(&paths) {
        groups
            .entry((c.calling, c.called))
            .or_default()
            .push(p.clone());
    }
    for ((calling, called), files) in &groups {
        send(&r, calling, called, files);
    }

    // Every expected copy arrives ...
    let expected: usize = cases.iter().map(|c| c.sinks.len()).sum();
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (sinks.values().map(|s| s.received().len()).sum::<usize>() >= expected).then_some(()),
        || {
            r.context(&format!(
                "sinks got {:?} copies, expected {expected}",
                sinks
                    .iter()
                    .map(|(n, s)| (n, s.received().len()))
                    .collect::<Vec<_>>()
            ))
        },
    );
    // ... and nothing else (the queue is drained, so no late copy can come).
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let c = r.queue_counts();
            (c["jobs"]["queued"] == 0
                && c["jobs"]["in_flight"] == 0
                && c["instances"]["received"] == 0)
                .then_some(())
        },
        || r.context(&format!("queue not drained: {}", r.queue_counts())),
    );
    for ((c, uid), study) in cases.iter().zip(&uids).zip(&studies) {
        for (n, sink) in &sinks {
            let got = sink.file_for(uid);
            assert_eq!(
                got.is_some(),
                c.sinks.contains(n),
                "{}",
                r.context(&format!(
                    "case {}: sink {n} has it: {}, expected sinks {:?}",
                    c.name,
                    got.is_some(),
                    c.sinks
                ))
            );
            if let Some(file) = got {
                let dump = dcmdump(&file);
                assert_eq!(
                    study_description(&dump).as_deref(),
                    Some(c.description),
                    "{}",
                    r.context(&format!(
                        "case {}: wrong deciding route (StudyDescription) in sink {n}:\n{dump}",
                        c.name
                    ))
                );
                if c.description != "orig" {
                    // The set is recorded with the prior value in Original Attributes Sequence.
                    let oas = dump.find("(0400,0561)").unwrap_or_else(|| {
                        panic!("case {}: no Original Attributes Sequence:\n{dump}", c.name)
                    });
                    assert!(
                        dump[oas..].contains("(0008,1030) LO [orig]"),
                        "case {}: prior StudyDescription not recorded:\n{dump}",
                        c.name
                    );
                }
                if c.name == "exists" {
                    let oas = dump.find("(0400,0561)").unwrap();
                    assert!(
                        !dump[..oas].contains("(0010,4000)"),
                        "PatientComments not removed:\n{dump}"
                    );
                    assert!(
                        dump[oas..].contains("(0010,4000) LT [remove me]"),
                        "removal not recorded:\n{dump}"
                    );
                }
            }
        }
        let instances = r.study_instances(study);
        assert_eq!(
            instances.len(),
            1,
            "case {}: study {study} in the API: {instances:?}",
            c.name
        );
        if c.name == "drop" {
            let note = instances[0]["note"].as_str().unwrap_or("");
            assert!(
                note.contains("dropped"),
                "dropped instance's note: {}",
                instances[0]
            );
        }
    }
    let log = r.log();
    assert!(
        log.contains("drop-qa"),
        "{}",
        r.context("the dropping route is not logged")
    );
    let metrics = r.metrics();
    assert!(
        metrics.contains("radroute_instances_dropped_total 1"),
        "{metrics}"
    );
}

#[test]
fn all_matches_accumulates_destinations_and_edits() {
    let dir = radroute_e2e::test_dir("rules2");
    let d = dir.path();
    let a = StoreScp::start(&d.join("sink-a"), "SINKA", free_port());
    let b = StoreScp::start(&d.join("sink-b"), "SINKB", free_port());
    let routes = r#"
[routing]
mode = "all-matches"

[[routes]]
name = "everything"
destinations = ["a"]

[[routes]]
name = "station-copy"
when.attribute = [{ tag = "StationName", equals = "COPY" }]
destinations = ["b", "a"]
set = { StudyDescription = "copied" }

[[routes]]
name = "no-comments"
when.attribute = [{ tag = "PatientComments", exists = false }]
set = { InstitutionName = "NO COMMENTS" }
"#;
    let r = Radroute::start(
        d,
        Config {
            routes: Some(routes.into()),
            ..Config::default()
        }
        .destination("a", "SINKA", a.port)
        .destination("b", "SINKB", b.port),
    );
    let p1 = d.join("in/copy.dcm");
    let p2 = d.join("in/plain.dcm");
    let uids = make_instances(&[
        (
            &p1,
            Instance {
                pattern: "flat",
                set: &[("StationName", "COPY")],
                ..Instance::default()
            },
        ),
        (
            &p2,
            Instance {
                pattern: "flat",
                set: &[("PatientComments", "x")],
                ..Instance::default()
            },
        ),
    ]);
    send(&r, "STORESCU", "RADROUTE", &[p1, p2]);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (a.received().len() == 2 && b.received().len() == 1).then_some(()),
        || {
            r.context(&format!(
                "a has {:?}, b has {:?}",
                a.received(),
                b.received()
            ))
        },
    );
    assert!(b.file_for(&uids[0]).is_some(), "the copy should go to b");
    let dump = dcmdump(&a.file_for(&uids[0]).unwrap());
    assert_eq!(
        study_description(&dump).as_deref(),
        Some("copied"),
        "{dump}"
    );
    assert!(
        dump.contains("(0008,0080) LO [NO COMMENTS]"),
        "edits of both routes should apply:\n{dump}"
    );
    let dump = dcmdump(&a.file_for(&uids[1]).unwrap());
    assert!(
        !dump.contains("NO COMMENTS"),
        "exists = false matched an instance that has it:\n{dump}"
    );
}

/// `priority = "high"` on the deciding route: the forwarded C-STORE-RQ carries priority HIGH
/// (read from storescp's DIMSE debug log).
#[test]
fn route_priority_reaches_the_destination() {
    let dir = radroute_e2e::test_dir("priority");
    let d = dir.path();
    let p = StoreScp::start_with_args(&d.join("sink-p"), "SINKP", free_port(), &["+xa", "-d"]);
    let routes = "\n[[routes]]\ndestinations = [\"p\"]\npriority = \"high\"\n";
    let r = Radroute::start(
        d,
        Config {
            routes: Some(routes.into()),
            ..Config::default()
        }
        .destination("p", "SINKP", p.port),
    );
    let file = d.join("in/p.dcm");
    let uid = make_instances(&[(&file, Instance::default())]).remove(0);
    send(&r, "STORESCU", "RADROUTE", &[file]);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || p.file_for(&uid),
        || r.context("not forwarded"),
    );
    assert!(
        p.log().contains("Priority                      : high"),
        "priority not high at the destination:\n{}",
        p.log_tail(60)
    );
}

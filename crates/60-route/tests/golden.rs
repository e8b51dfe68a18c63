//! Data-driven tests: each `tests/data/cases/*.toml` holds a rule set (`[routing]`,
//! `[[routes]]`, `known_destinations`), instance cases (`[[cases]]`) and study cases
//! (`[[studies]]`) with the expected decisions; `tests/data/errors.toml` holds invalid
//! configurations with the expected error messages (location included).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use radroute_route::{
    parse_tag, Attributes, Edit, InstanceLabel, Priority, RouteConfig, RouteDecision, RouteInput,
    RoutingOptions, RuleSet, StudyTracker, Tag,
};
use serde::Deserialize;

struct MapAttrs(BTreeMap<Tag, String>);

impl Attributes for MapAttrs {
    fn get(&self, tag: Tag) -> Option<String> {
        self.0.get(&tag).cloned()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    known_destinations: Vec<String>,
    #[serde(default)]
    routing: RoutingOptions,
    #[serde(default)]
    routes: Vec<RouteConfig>,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    studies: Vec<StudyCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    name: String,
    label: Option<String>,
    confidence: Option<f32>,
    calling_ae: Option<String>,
    called_ae: Option<String>,
    peer: Option<String>,
    /// `YYYY-MM-DDTHH:MM`, default Wednesday 2026-11-25 12:00.
    time: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Study cases only.
    study: Option<String>,
    sop: Option<String>,
    expect: Option<Expect>,
}

type Case = Input;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyCase {
    name: String,
    instances: Vec<Input>,
    /// Study Instance UID -> expected study decision.
    expect: BTreeMap<String, Expect>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    destinations: Vec<String>,
    #[serde(default)]
    edits: Vec<String>,
    dropped: Option<String>,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    matched: Vec<String>,
    #[serde(default)]
    used_fallback: bool,
    #[serde(default)]
    deferred: Vec<String>,
    #[serde(default)]
    relabel_study: bool,
    /// Study cases: derived body part ("none" for abstention) and confidence (±0.001).
    label: Option<String>,
    confidence: Option<f32>,
}

fn actual(d: &RouteDecision) -> Expect {
    Expect {
        destinations: d.destinations.clone(),
        edits: d
            .edits
            .iter()
            .map(|e| match e {
                Edit::Set { tag, value } => format!("set {tag}={value}"),
                Edit::Remove { tag } => format!("remove {tag}"),
            })
            .collect(),
        dropped: d.dropped.as_ref().map(|r| r.name.clone()),
        priority: d.priority,
        matched: d.matched.iter().map(|r| r.name.clone()).collect(),
        used_fallback: d.used_fallback,
        deferred: d.deferred_to_study.iter().map(|r| r.name.clone()).collect(),
        relabel_study: d.relabel_study,
        label: None,
        confidence: None,
    }
}

fn attrs(input: &Input) -> MapAttrs {
    MapAttrs(
        input
            .attributes
            .iter()
            .map(|(k, v)| {
                (
                    parse_tag(k).unwrap_or_else(|e| panic!("{}: {e}", input.name)),
                    v.clone(),
                )
            })
            .collect(),
    )
}

fn decide(rules: &RuleSet, input: &Input) -> RouteDecision {
    let attributes = attrs(input);
    let peer: IpAddr = input
        .peer
        .as_deref()
        .unwrap_or("192.0.2.10")
        .parse()
        .expect("peer");
    let time = input.time.as_deref().unwrap_or("2026-11-25T12:00");
    let local_time = NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M").expect("time");
    rules.evaluate(&RouteInput {
        attributes: &attributes,
        label: input.label.as_deref(),
        confidence: input.confidence,
        calling_ae: input.calling_ae.as_deref().unwrap_or("MODALITY"),
        called_ae: input.called_ae.as_deref().unwrap_or("RADROUTE"),
        peer,
        local_time,
    })
}

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read case file");
    let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rules = RuleSet::compile(&file.routes, &file.routing, &file.known_destinations)
        .unwrap_or_else(|errs| panic!("{}: {errs:#?}", path.display()));
    let mut failures = Vec::new();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for case in &file.cases {
        let got = actual(&decide(&rules, case));
        let want = case
            .expect
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no expect", case.name));
        if &got != want {
            failures.push(format!(
                "{file_name} case {:?}:\n  want {want:?}\n  got  {got:?}",
                case.name
            ));
        }
    }
    for sc in &file.studies {
        let t0 = Instant::now();
        let mut tracker = StudyTracker::new(rules.study_stable_after());
        for (i, inst) in sc.instances.iter().enumerate() {
            let d = decide(&rules, inst);
            if d.deferred_to_study.is_empty() {
                continue;
            }
            let label = InstanceLabel {
                sop_instance_uid: inst.sop.clone().unwrap_or_else(|| format!("sop{i}")),
                label: inst.label.clone(),
                confidence: inst.confidence,
            };
            let study = inst.study.as_deref().expect("study uid");
            tracker.observe(
                study,
                label,
                &d.deferred_to_study,
                t0 + Duration::from_secs(i as u64),
            );
        }
        let last = t0 + Duration::from_secs(sc.instances.len() as u64);
        if !tracker.stable_studies(last).is_empty() {
            failures.push(format!("{file_name} study {:?}: stable too early", sc.name));
        }
        let mut got = BTreeMap::new();
        for study in tracker.take_stable(last + rules.study_stable_after()) {
            let body = study.body_part();
            let mut e = actual(&rules.evaluate_study(&study));
            e.label = Some(body.label.unwrap_or_else(|| "none".into()));
            e.confidence = body.confidence;
            got.insert(study.study_instance_uid.clone(), e);
        }
        let mut ok = got.len() == sc.expect.len();
        for (uid, want) in &sc.expect {
            let Some(g) = got.get_mut(uid) else {
                ok = false;
                continue;
            };
            if let (Some(w), Some(c)) = (want.confidence, g.confidence) {
                if (w - c).abs() < 1e-3 {
                    g.confidence = Some(w);
                }
            }
            ok &= g == want;
        }
        if !ok {
            failures.push(format!(
                "{file_name} study {:?}:\n  want {:?}\n  got  {got:?}",
                sc.name, sc.expect
            ));
        }
    }
    failures
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "case files missing");
    let failures: Vec<String> = paths.iter().flat_map(|p| run_file(p)).collect();
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorFile {
    case: Vec<ErrorCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorCase {
    name: String,
    #[serde(default = "default_known")]
    known_destinations: Vec<String>,
    config: String,
    /// Exactly these messages, in order (`<location>: <reason>` prefixes are enough).
    expect: Vec<String>,
}

fn default_known() -> Vec<String> {
    vec!["pacs".into(), "archive".into()]
}

#[derive(Debug, Deserialize)]
struct Embedded {
    #[serde(default)]
    routing: RoutingOptions,
    #[serde(default)]
    routes: Vec<RouteConfig>,
}

#[test]
fn compile_errors_have_locations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/errors.toml");
    let file: ErrorFile =
        toml::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse errors.toml");
    let mut failures = Vec::new();
    for case in &file.case {
        let cfg: Embedded =
            toml::from_str(&case.config).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got: Vec<String> =
            match RuleSet::compile(&cfg.routes, &cfg.routing, &case.known_destinations) {
                Ok(_) => vec![],
                Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
            };
        let ok = got.len() == case.expect.len()
            && got
                .iter()
                .zip(&case.expect)
                .all(|(g, w)| g.starts_with(w.as_str()));
        if !ok {
            failures.push(format!(
                "{:?}:\n  want {:#?}\n  got  {got:#?}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

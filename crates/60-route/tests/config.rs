//! The routing section as the binary embeds it: legacy configs keep working, typos are
//! rejected by serde, and the schema round-trips through TOML.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use chrono::NaiveDate;
use radroute_route::{Attributes, RouteInput, RoutesConfig, RuleSet, Tag};
use serde::{Deserialize, Serialize};

/// A stand-in for the binary's config struct.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct AppConfig {
    #[serde(default)]
    destinations: Vec<Destination>,
    #[serde(flatten)]
    routing: RoutesConfig,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Destination {
    name: String,
    ae_title: String,
    address: String,
}

struct NoAttrs;

impl Attributes for NoAttrs {
    fn get(&self, _: Tag) -> Option<String> {
        None
    }
}

const LEGACY: &str = r#"
[[destinations]]
name = "pacs"
ae_title = "ORTHANC"
address = "127.0.0.1:4242"
[[routes]]
destinations = ["pacs"]
"#;

fn compile(cfg: &AppConfig) -> RuleSet {
    let known: Vec<String> = cfg.destinations.iter().map(|d| d.name.clone()).collect();
    RuleSet::compile(&cfg.routing.routes, &cfg.routing.routing, &known).expect("valid rules")
}

#[test]
fn legacy_destination_list_routes_everything() {
    let cfg: AppConfig = toml::from_str(LEGACY).expect("legacy config parses");
    let rules = compile(&cfg);
    let input = RouteInput {
        attributes: &NoAttrs,
        label: None,
        confidence: None,
        calling_ae: "ANY",
        called_ae: "RADROUTE",
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        local_time: NaiveDate::from_ymd_opt(2026, 11, 28)
            .and_then(|d| d.and_hms_opt(3, 0, 0))
            .expect("date"),
    };
    let d = rules.evaluate(&input);
    assert_eq!(d.destinations, vec!["pacs".to_string()]);
    assert!(!d.used_fallback);
    assert_eq!(d.matched[0].name, "routes[0]");
}

#[test]
fn typos_are_rejected_with_the_field_name() {
    let text = format!("{LEGACY}when.lable = \"KNEE\"\n");
    let err = toml::from_str::<AppConfig>(&text).expect_err("unknown field");
    assert!(err.to_string().contains("lable"), "{err}");
    let text = format!("{LEGACY}scope = \"series\"\n");
    let err = toml::from_str::<AppConfig>(&text).expect_err("unknown scope");
    assert!(err.to_string().contains("series"), "{err}");
}

#[test]
fn schema_round_trips() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cases/first_match.toml"
    ))
    .expect("read");
    #[derive(Deserialize)]
    struct Rules {
        #[serde(flatten)]
        routing: RoutesConfig,
        #[serde(flatten)]
        _rest: BTreeMap<String, toml::Value>,
    }
    let parsed: Rules = toml::from_str(&text).expect("parse");
    let again: RoutesConfig =
        toml::from_str(&toml::to_string(&parsed.routing).expect("serialize")).expect("reparse");
    assert_eq!(again, parsed.routing);
    assert_eq!(again.routes.len(), 8);
}

#[test]
fn examples_in_docs_compile() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/routing.md"
    ))
    .expect("docs/routing.md");
    let known: Vec<String> = [
        "pacs", "archive", "review", "ortho", "night", "ai-audit", "hanging",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut checked = 0;
    for block in doc.split("```toml").skip(1) {
        let Some((text, _)) = block.split_once("```") else {
            continue;
        };
        let cfg: AppConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        RuleSet::compile(&cfg.routing.routes, &cfg.routing.routing, &known)
            .unwrap_or_else(|e| panic!("{e:#?}\n{text}"));
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} toml examples found");
}

/// The binary warns about routes on labels the model cannot give; it needs them listed, in
/// route order, upper-cased as they are matched, without the abstention.
#[test]
fn label_conditions_are_listed_for_the_model_check() {
    let text = format!(
        "{LEGACY}\n[[routes]]\nname = \"feet\"\nwhen.label = [\"foot\", \"none\", \" Knee \"]\n\
         destinations = [\"pacs\"]\n[[routes]]\nwhen.label = \"HAND\"\ndestinations = [\"pacs\"]\n"
    );
    let cfg: AppConfig = toml::from_str(&text).expect("parse");
    let listed: Vec<(String, String)> = compile(&cfg)
        .label_conditions()
        .into_iter()
        .map(|(rule, label)| (rule.name, label))
        .collect();
    let want = [("feet", "FOOT"), ("feet", "KNEE"), ("routes[2]", "HAND")];
    assert_eq!(
        listed,
        want.map(|(r, l)| (r.to_string(), l.to_string())).to_vec()
    );
}

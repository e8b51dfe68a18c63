//! What the console needs from the running node beyond the queue and the evidence store:
//! the [`NodeView`] trait, implemented by the node's wiring (a few lines over its state), and
//! by a fake in the tests.
//!
//! Every method is synchronous and may block (a C-ECHO, a file read, a model run): the console
//! calls them on the blocking pool.

use std::collections::BTreeMap;
use std::time::Duration;

pub use radroute_audit::{OperatorAction, OperatorActionKind};
use radroute_evidence::Evidence;

/// The model the node runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFacts {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// ONNX Runtime execution provider (`CPU`, `CUDA`).
    pub execution_provider: String,
    /// False when configured but not loaded (instances flow unlabelled).
    pub loaded: bool,
}

/// Cumulative counters since the node started (the Prometheus counters of the same names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Instances stored (`radroute_instances_received_total{outcome="stored"}`).
    pub received: u64,
    /// Jobs delivered (`radroute_forward_total{outcome="delivered"}`, all destinations).
    pub forwarded: u64,
    /// Labels written, by label (`radroute_labels_total`).
    pub labels: BTreeMap<String, u64>,
    /// Instances left unlabelled, by reason (`radroute_abstentions_total`).
    pub abstentions: BTreeMap<String, u64>,
}

impl Counters {
    /// Reads the counters from Prometheus text exposition (what `/metrics` serves), so the
    /// node needs no second bookkeeping. Unknown lines are ignored.
    pub fn from_prometheus(text: &str) -> Counters {
        let mut c = Counters::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let value = value.max(0.0) as u64;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| -> Option<String> {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            match name {
                "radroute_instances_received_total"
                    if label("outcome").as_deref() == Some("stored") =>
                {
                    c.received += value
                }
                "radroute_forward_total" if label("outcome").as_deref() == Some("delivered") => {
                    c.forwarded += value
                }
                "radroute_labels_total" => {
                    *c.labels
                        .entry(label("label").unwrap_or_default())
                        .or_default() += value
                }
                "radroute_abstentions_total" => {
                    *c.abstentions
                        .entry(label("reason").unwrap_or_default())
                        .or_default() += value
                }
                _ => {}
            }
        }
        c
    }
}

/// The node's state as the overview shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    /// The node's AE title.
    pub ae_title: String,
    /// The model, when labelling is configured.
    pub model: Option<ModelFacts>,
    /// Free bytes on the spool's file system (`None` when it cannot be read).
    pub spool_free_bytes: Option<u64>,
    /// The watermark below which C-STOREs are refused (`[node] min_free_mb`).
    pub min_free_bytes: u64,
    /// DICOM associations open now.
    pub associations_open: u64,
    /// Cumulative counters.
    pub counters: Counters,
}

/// A configured destination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationInfo {
    /// Name used by the rules.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Called AE title.
    pub ae_title: String,
    /// Whether the last probe (start-up C-ECHO) or send reached it (`None`: not known yet).
    pub reachable: Option<bool>,
}

/// What the rule tester runs the current rules on.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleTestInput {
    /// A received instance (spool id).
    Instance(String),
    /// An uploaded DICOM file.
    File(Vec<u8>),
}

/// What the console needs from the running node.
pub trait NodeView: Send + Sync + 'static {
    /// Model, disk, associations, counters.
    fn facts(&self) -> NodeFacts;
    /// The configured destinations, in configuration order.
    fn destinations(&self) -> Vec<DestinationInfo>;
    /// The active routing configuration as written (`[routing]` and `[[routes]]`, TOML).
    fn rules_text(&self) -> String;
    /// Runs labelling (without writing anything) and the current rules on `input`: the
    /// decision, as evidence. Nothing is sent, stored or queued.
    fn test_rules(&self, input: RuleTestInput) -> Result<Evidence, String>;
    /// C-ECHO to a destination now; the round trip time, or why it failed.
    fn echo(&self, destination: &str) -> Result<Duration, String>;
    /// Records an operator action (the audit trail: radroute-audit's `Audit::record`).
    fn record_action(&self, action: OperatorAction);
    /// The latest operator actions, newest first (radroute-audit's `Audit::operator_actions`).
    fn operator_actions(&self, limit: usize) -> Vec<OperatorAction>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_prometheus_text() {
        let text = "\
# HELP radroute_labels_total Body-part labels written, by label
# TYPE radroute_labels_total counter
radroute_labels_total{label=\"HAND\"} 3
radroute_labels_total{label=\"KNEE\"} 2
radroute_abstentions_total{reason=\"below_threshold\"} 1
radroute_instances_received_total{outcome=\"stored\"} 7
radroute_instances_received_total{outcome=\"refused\"} 4
radroute_forward_total{destination=\"a\",outcome=\"delivered\"} 5
radroute_forward_total{destination=\"b\",outcome=\"delivered\"} 1
radroute_forward_total{destination=\"b\",outcome=\"retry\"} 9
garbage line
";
        let c = Counters::from_prometheus(text);
        assert_eq!(c.received, 7);
        assert_eq!(c.forwarded, 6);
        assert_eq!(c.labels.get("HAND"), Some(&3));
        assert_eq!(c.labels.get("KNEE"), Some(&2));
        assert_eq!(c.abstentions.get("below_threshold"), Some(&1));
    }
}

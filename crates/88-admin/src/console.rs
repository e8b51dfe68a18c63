//! The web console (radroute-console) over a running node: the [`NodeView`] the console reads,
//! built from [`NodeState`], and the console's router, merged at `/` by [`crate::build`].
//!
//! Counters and gauges come from the Prometheus recorder (`/metrics` renders the same), so the
//! console keeps no second bookkeeping; operator actions go to the node's audit trail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use radroute_console::{
    ConsoleState, Counters, DestinationInfo, ModelFacts, NodeFacts, NodeView, OperatorAction,
    RuleTestInput,
};
use radroute_evidence::Evidence;
use radroute_node::inspect::TestInput;
use radroute_node::NodeState;

/// The console's view of a running node.
pub struct NodeConsole {
    node: Arc<NodeState>,
}

/// The console state of a node, with the admin token.
pub fn state(node: Arc<NodeState>, token: Option<&str>) -> ConsoleState {
    ConsoleState::new(
        node.queue.clone(),
        node.inspect.evidence.clone(),
        Arc::new(NodeConsole { node }),
        token,
    )
}

/// A gauge's value per `label` value from Prometheus text (`name{label="v"} x`).
fn gauge_by(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (labels, value) = rest.rsplit_once(' ')?;
            let key = format!("{label}=\"");
            let start = labels.find(&key)? + key.len();
            let end = labels[start..].find('"')? + start;
            Some((labels[start..end].to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A gauge without labels.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series == name).then(|| value.trim().parse().ok())?
    })
}

fn metrics_text() -> String {
    radroute_node::telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default()
}

impl NodeView for NodeConsole {
    fn facts(&self) -> NodeFacts {
        let text = metrics_text();
        let inspect = &self.node.inspect;
        NodeFacts {
            ae_title: inspect.ae_title.clone(),
            model: inspect.model.as_ref().map(|m| ModelFacts {
                name: m.name.clone(),
                version: m.version.clone(),
                execution_provider: m.execution_provider.clone(),
                loaded: self.node.model_loaded == Some(true),
            }),
            spool_free_bytes: self.node.spool.free_bytes().ok(),
            min_free_bytes: inspect.min_free_bytes(),
            associations_open: gauge(&text, radroute_node::telemetry::ASSOCIATIONS_ACTIVE)
                .unwrap_or(0.0)
                .max(0.0) as u64,
            counters: Counters::from_prometheus(&text),
        }
    }

    fn destinations(&self) -> Vec<DestinationInfo> {
        let reachable = gauge_by(
            &metrics_text(),
            radroute_node::reachability::DESTINATION_REACHABLE,
            "destination",
        );
        self.node
            .inspect
            .destinations()
            .into_iter()
            .map(|d| DestinationInfo {
                reachable: reachable
                    .iter()
                    .find(|(name, _)| *name == d.name)
                    .map(|(_, v)| *v >= 1.0),
                name: d.name,
                address: d.address,
                ae_title: d.ae_title,
            })
            .collect()
    }

    fn rules_text(&self) -> String {
        self.node.inspect.rules_text()
    }

    fn test_rules(&self, input: RuleTestInput) -> Result<Evidence, String> {
        let input = match input {
            RuleTestInput::Instance(id) => TestInput::Instance(id),
            RuleTestInput::File(bytes) => TestInput::File(bytes),
        };
        self.node
            .inspect
            .test_rules(self.node.spool.as_ref(), self.node.queue.as_ref(), input)
    }

    fn echo(&self, destination: &str) -> Result<Duration, String> {
        let dest = self
            .node
            .inspect
            .destinations()
            .into_iter()
            .find(|d| d.name == destination)
            .ok_or_else(|| format!("no destination {destination:?}"))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "no runtime for the C-ECHO".to_string())?;
        let started = Instant::now();
        runtime.block_on(radroute_node::reachability::probe(&dest))?;
        radroute_node::reachability::mark(&dest.name, true);
        Ok(started.elapsed())
    }

    fn record_action(&self, action: OperatorAction) {
        self.node.audit.record(action);
    }

    fn operator_actions(&self, limit: usize) -> Vec<OperatorAction> {
        self.node.audit.operator_actions(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_from_prometheus_text() {
        let text = "radroute_associations_active 3\n\
                    radroute_destination_reachable{destination=\"pacs\"} 1\n\
                    radroute_destination_reachable{destination=\"void\"} 0\n";
        assert_eq!(gauge(text, "radroute_associations_active"), Some(3.0));
        assert_eq!(gauge(text, "radroute_missing"), None);
        assert_eq!(
            gauge_by(text, "radroute_destination_reachable", "destination"),
            vec![("pacs".to_string(), 1.0), ("void".to_string(), 0.0)]
        );
    }
}

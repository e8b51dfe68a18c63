//! The compiled rule set and its evaluation: from a [`RouteInput`] to a [`RouteDecision`].

use std::fmt;
use std::net::IpAddr;

use chrono::NaiveDateTime;

use crate::action::{Edit, Priority};
use crate::config::{RouteConfig, RoutingOptions, Scope};
use crate::error::RuleError;
use crate::study::Study;
use crate::tag::Attributes;
use crate::validate::{compile_all, CompiledRoute};

/// Identifies a route in decisions and logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// Zero-based index in `[[routes]]`.
    pub index: usize,
    /// The route's name, or `routes[<index>]` when it has none.
    pub name: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Everything a rule can look at for one instance.
#[derive(Clone, Copy)]
pub struct RouteInput<'a> {
    /// The instance's attributes (as received, before routing edits).
    pub attributes: &'a dyn Attributes,
    /// The AI label (a Body Part Examined term); `None` when the model abstained or did
    /// not run. Matched by `label = "none"`.
    pub label: Option<&'a str>,
    /// The model's confidence for `label` (or for its best guess when it abstained).
    pub confidence: Option<f32>,
    /// Calling AE title of the association the instance arrived on.
    pub calling_ae: &'a str,
    /// Called AE title of that association.
    pub called_ae: &'a str,
    /// Peer IP address of that association.
    pub peer: IpAddr,
    /// Local wall-clock time of arrival, for `time` windows.
    pub local_time: NaiveDateTime,
}

/// What to do with an instance (or, from [`RuleSet::evaluate_study`], with a whole study).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteDecision {
    /// Where to forward it: deduplicated, in route order then listing order.
    pub destinations: Vec<String>,
    /// Header edits, in route order; a later route's edit of the same tag replaces an
    /// earlier one.
    pub edits: Vec<Edit>,
    /// The route that dropped the instance; when set, nothing else applies (log it).
    pub dropped: Option<RuleRef>,
    /// Priority for the forward jobs: the highest set by a matching route, else Medium.
    pub priority: Priority,
    /// Matching routes that applied, in order.
    pub matched: Vec<RuleRef>,
    /// True when `destinations` are the fallback because no route sent it anywhere.
    pub used_fallback: bool,
    /// Study-scope routes whose non-label conditions matched: the instance waits for its
    /// study to be stable (pass these to [`crate::StudyTracker::observe`]).
    pub deferred_to_study: Vec<RuleRef>,
    /// Study decisions only: write the study's derived body part to all its instances.
    pub relabel_study: bool,
}

impl RouteDecision {
    /// Whether a route dropped the instance.
    pub fn is_dropped(&self) -> bool {
        self.dropped.is_some()
    }

    fn apply(&mut self, r: &CompiledRoute, max_priority: &mut Option<Priority>) {
        self.matched.push(r.rule.clone());
        for d in &r.destinations {
            if !self.destinations.contains(d) {
                self.destinations.push(d.clone());
            }
        }
        for e in &r.edits {
            self.edits.retain(|old| old.tag() != e.tag());
            self.edits.push(e.clone());
        }
        if let Some(p) = r.priority {
            *max_priority = Some(max_priority.map_or(p, |m| m.max(p)));
        }
        self.relabel_study |= r.relabel;
    }
}

/// A validated rule set, ready to evaluate. Build it once at start-up (and on reload).
///
/// Evaluation walks the routes in file order. Every matching route applies its actions
/// (destinations and edits accumulate); evaluation ends after a matching route whose `stop`
/// is true. `stop` defaults to true in `first-match` mode and false in `all-matches` mode.
/// A matching `drop` route ends evaluation and discards everything else. Study-scope routes
/// are first only candidates (see [`RuleSet::evaluate`]) and are decided per study by
/// [`RuleSet::evaluate_study`] with the same order and `stop` rules. If no destination
/// results and nothing was deferred to a study, the fallback destinations are used.
#[derive(Debug, Clone)]
pub struct RuleSet {
    routes: Vec<CompiledRoute>,
    fallback: Vec<String>,
    options: RoutingOptions,
}

impl RuleSet {
    /// Validates the routes against the options and the names of the configured
    /// destinations; returns every error found, each with its location.
    pub fn compile(
        routes: &[RouteConfig],
        options: &RoutingOptions,
        known_destinations: &[String],
    ) -> Result<RuleSet, Vec<RuleError>> {
        let (routes, fallback) = compile_all(routes, options, known_destinations)?;
        Ok(RuleSet {
            routes,
            fallback,
            options: options.clone(),
        })
    }

    /// The routing options this set was compiled with (mode, fallback, study stability).
    pub fn options(&self) -> &RoutingOptions {
        &self.options
    }

    /// Every label a route tests for (`when.label`, upper-cased, the abstention `"none"` left
    /// out), with the route, in route order: the binary checks them against the labels the
    /// configured model can give, since a route on a label the model never gives never matches.
    pub fn label_conditions(&self) -> Vec<(RuleRef, String)> {
        self.routes
            .iter()
            .flat_map(|r| {
                r.conditions
                    .labels()
                    .map(move |l| (r.rule.clone(), l.to_string()))
            })
            .collect()
    }

    /// How long a study must go without a new instance before it is stable.
    pub fn study_stable_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.options.study_stable_after_secs)
    }

    /// Routes one instance. Study-scope routes are only checked on their non-label
    /// conditions here and reported in `deferred_to_study`; a deferred route with `stop`
    /// ends the instance-scope routes but later study-scope routes are still collected, so
    /// that at study time the first study route whose label conditions hold wins.
    pub fn evaluate(&self, input: &RouteInput<'_>) -> RouteDecision {
        let mut d = RouteDecision::default();
        let mut priority = None;
        // Set by a matching study-scope route with `stop`: later instance-scope routes no
        // longer apply, but later study-scope routes are still collected as candidates,
        // because whether the stopping one really matches is only known at study time.
        let mut instance_stopped = false;
        for r in &self.routes {
            if instance_stopped && r.scope == Scope::Instance {
                continue;
            }
            if !r.conditions.matches_context(input) {
                continue;
            }
            if r.scope == Scope::Study {
                d.deferred_to_study.push(r.rule.clone());
                instance_stopped |= r.stop;
                continue;
            }
            if !r.conditions.matches_label(input.label, input.confidence) {
                continue;
            }
            if r.drop {
                return RouteDecision {
                    dropped: Some(r.rule.clone()),
                    matched: vec![r.rule.clone()],
                    ..Default::default()
                };
            }
            d.apply(r, &mut priority);
            if r.stop {
                break;
            }
        }
        d.priority = priority.unwrap_or_default();
        if d.destinations.is_empty() && d.deferred_to_study.is_empty() {
            d.destinations = self.fallback.clone();
            d.used_fallback = true;
        }
        d
    }

    /// Routes a stable study: the study-scope routes its instances were deferred to are
    /// checked, in file order, on their label conditions against the study's derived body
    /// part ([`Study::body_part`]); matching ones apply to every instance of the study.
    /// If none matches, the study goes to the fallback.
    pub fn evaluate_study(&self, study: &Study) -> RouteDecision {
        let body = study.body_part();
        let mut d = RouteDecision::default();
        let mut priority = None;
        for r in self
            .routes
            .iter()
            .filter(|r| r.scope == Scope::Study && study.deferred().contains(&r.rule.index))
        {
            if !r
                .conditions
                .matches_label(body.label.as_deref(), body.confidence)
            {
                continue;
            }
            d.apply(r, &mut priority);
            if r.stop {
                break;
            }
        }
        d.priority = priority.unwrap_or_default();
        if d.destinations.is_empty() {
            d.destinations = self.fallback.clone();
            d.used_fallback = true;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon shares one compiled rule set across the blocking pool.
    #[test]
    fn rule_set_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RuleSet>();
        assert_send_sync::<crate::StudyTracker>();
    }
}

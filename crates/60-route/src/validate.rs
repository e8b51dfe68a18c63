//! Validation: from the raw [`RouteConfig`]s to compiled routes, collecting every error.

use std::collections::BTreeSet;

use crate::action::{Edit, Priority};
use crate::condition::Conditions;
use crate::config::{Mode, RouteConfig, RoutingOptions, Scope};
use crate::error::{Location, RuleError, RuleErrorKind};
use crate::eval::RuleRef;
use crate::tag::{parse_tag, Tag};

/// Collects errors for one route, stamping each with the route's location.
pub(crate) struct RouteErrors<'a> {
    index: usize,
    name: Option<String>,
    errors: &'a mut Vec<RuleError>,
}

impl RouteErrors<'_> {
    pub(crate) fn push(&mut self, field: impl Into<String>, kind: RuleErrorKind) {
        self.errors.push(RuleError {
            location: Location::Route {
                index: self.index,
                name: self.name.clone(),
                field: field.into(),
            },
            kind,
        });
    }
}

/// One validated route.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRoute {
    pub(crate) rule: RuleRef,
    pub(crate) conditions: Conditions,
    pub(crate) destinations: Vec<String>,
    pub(crate) edits: Vec<Edit>,
    pub(crate) drop: bool,
    pub(crate) priority: Option<Priority>,
    pub(crate) scope: Scope,
    pub(crate) stop: bool,
    pub(crate) relabel: bool,
}

fn edit_tag(text: &str, field: String, errs: &mut RouteErrors<'_>) -> Option<Tag> {
    match parse_tag(text) {
        Ok(tag) => match tag.protected() {
            Some(what) => {
                errs.push(
                    field,
                    RuleErrorKind::BadTag(format!("{tag} ({what}) may not be edited by routing")),
                );
                None
            }
            None => Some(tag),
        },
        Err(e) => {
            errs.push(field, RuleErrorKind::BadTag(e));
            None
        }
    }
}

fn check_destinations(
    names: &[String],
    known: &[String],
    mut report: impl FnMut(usize, RuleErrorKind),
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if !known.contains(name) {
            report(
                i,
                RuleErrorKind::UnknownDestination {
                    name: name.clone(),
                    known: known.join(", "),
                },
            );
        } else if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Compiles one route, pushing its errors.
fn compile_route(
    index: usize,
    cfg: &RouteConfig,
    options: &RoutingOptions,
    known: &[String],
    errors: &mut Vec<RuleError>,
) -> CompiledRoute {
    let mut errs = RouteErrors {
        index,
        name: cfg.name.clone(),
        errors,
    };
    let conditions = Conditions::compile(&cfg.when, &mut errs);
    let destinations = check_destinations(&cfg.destinations, known, |i, kind| {
        errs.push(format!("destinations[{i}]"), kind)
    });
    let mut edits = Vec::new();
    for (key, value) in &cfg.set {
        if let Some(tag) = edit_tag(key, format!("set.{key:?}"), &mut errs) {
            edits.push(Edit::Set {
                tag,
                value: value.clone(),
            });
        }
    }
    for (i, key) in cfg.remove.iter().enumerate() {
        if let Some(tag) = edit_tag(key, format!("remove[{i}]"), &mut errs) {
            if edits.iter().any(|e| e.tag() == tag) {
                errs.push(
                    format!("remove[{i}]"),
                    RuleErrorKind::BadActions(format!("{key:?} is both set and removed")),
                );
            }
            edits.push(Edit::Remove { tag });
        }
    }
    if cfg.drop && (!cfg.destinations.is_empty() || !edits.is_empty() || cfg.priority.is_some()) {
        errs.push(
            "drop",
            RuleErrorKind::BadActions(
                "drop cannot be combined with destinations, set, remove or priority".into(),
            ),
        );
    }
    if cfg.drop && cfg.scope == Scope::Study {
        errs.push(
            "drop",
            RuleErrorKind::BadActions("drop is per instance; use scope = \"instance\"".into()),
        );
    }
    if !cfg.drop && cfg.destinations.is_empty() && cfg.set.is_empty() && cfg.remove.is_empty() {
        errs.push(
            "destinations",
            RuleErrorKind::BadActions(
                "route does nothing: give destinations, set, remove or drop".into(),
            ),
        );
    } else if cfg.scope == Scope::Study && cfg.destinations.is_empty() && !cfg.drop {
        errs.push(
            "destinations",
            RuleErrorKind::BadActions("a study-scope route needs destinations".into()),
        );
    }
    if cfg.relabel.is_some() && cfg.scope != Scope::Study {
        errs.push(
            "relabel",
            RuleErrorKind::BadActions("relabel applies to scope = \"study\" only".into()),
        );
    }
    let name = cfg
        .name
        .clone()
        .unwrap_or_else(|| format!("routes[{index}]"));
    CompiledRoute {
        rule: RuleRef { index, name },
        conditions,
        destinations,
        edits,
        drop: cfg.drop,
        priority: cfg.priority,
        scope: cfg.scope,
        stop: cfg.stop.unwrap_or(options.mode == Mode::FirstMatch),
        relabel: cfg.scope == Scope::Study && cfg.relabel.unwrap_or(true),
    }
}

/// Compiles all routes and checks the rule set as a whole (names, fallback).
pub(crate) fn compile_all(
    routes: &[RouteConfig],
    options: &RoutingOptions,
    known: &[String],
) -> Result<(Vec<CompiledRoute>, Vec<String>), Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    let mut compiled = Vec::with_capacity(routes.len());
    for (index, cfg) in routes.iter().enumerate() {
        if let Some(name) = &cfg.name {
            if !names.insert(name.as_str()) {
                errors.push(RuleError {
                    location: Location::Route {
                        index,
                        name: Some(name.clone()),
                        field: "name".into(),
                    },
                    kind: RuleErrorKind::DuplicateName(name.clone()),
                });
            }
        }
        compiled.push(compile_route(index, cfg, options, known, &mut errors));
    }
    let fallback = check_destinations(&options.fallback, known, |i, kind| {
        errors.push(RuleError {
            location: Location::Routing {
                field: format!("fallback[{i}]"),
            },
            kind,
        })
    });
    if options.fallback.is_empty() {
        if let Some(reason) = unrouted_path(&compiled) {
            errors.push(RuleError {
                location: Location::Routing {
                    field: "fallback".into(),
                },
                kind: RuleErrorKind::NoFallback(reason),
            });
        }
    }
    if options.study_stable_after_secs == 0 {
        errors.push(RuleError {
            location: Location::Routing {
                field: "study_stable_after_secs".into(),
            },
            kind: RuleErrorKind::BadActions("must be at least 1 second".into()),
        });
    }
    if errors.is_empty() {
        Ok((compiled, fallback))
    } else {
        Err(errors)
    }
}

/// Without a fallback, every instance must reach a catch-all route with destinations,
/// and no route before it may end evaluation without sending the instance anywhere.
/// Returns why an instance could end up unrouted, if it could.
fn unrouted_path(routes: &[CompiledRoute]) -> Option<String> {
    if let Some(r) = routes
        .iter()
        .find(|r| r.scope == Scope::Study && r.conditions.has_label_conditions())
    {
        return Some(format!(
            "study-scope route {:?} has label conditions the study may not meet; set routing.fallback",
            r.rule.name
        ));
    }
    for r in routes {
        let catch_all = r.conditions.is_empty() && r.scope == Scope::Instance;
        if catch_all && !r.destinations.is_empty() {
            return None;
        }
        if catch_all && r.drop {
            return None;
        }
        if r.stop && r.scope == Scope::Instance && !r.drop && r.destinations.is_empty() {
            return Some(format!(
                "route {:?} can end evaluation without destinations; set routing.fallback",
                r.rule.name
            ));
        }
    }
    Some(
        "no route matches every instance (a route without `when`) and routing.fallback is empty; \
          an unmatched instance would go nowhere"
            .into(),
    )
}

//! Serde schema of the routing section of the configuration file.
//!
//! These structs exist so that the binary can embed the routing rules in its own config
//! struct (usually with `#[serde(flatten)] routing: RoutesConfig`) while the meaning and the
//! validation of the rules stay in this crate. They are raw, unvalidated data: pass them to
//! [`crate::RuleSet::compile`]. The format is documented with examples in `docs/routing.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::action::Priority;

/// The `[routing]` table and the `[[routes]]` array of the configuration file, as one value
/// the binary can flatten into its own config struct.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RoutesConfig {
    /// Global routing options (`[routing]`); all have defaults.
    #[serde(default)]
    pub routing: RoutingOptions,
    /// The rules (`[[routes]]`), in evaluation order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// The `[routing]` table: options that apply to the whole rule set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingOptions {
    /// Default value of each route's `stop`: `first-match` (default) stops after the first
    /// matching route, `all-matches` applies every matching route.
    #[serde(default)]
    pub mode: Mode,
    /// Destinations for an instance that no route sends anywhere (nothing matched, or only
    /// routes without destinations matched). May be empty only when a catch-all route exists.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Seconds without a new instance after which a study is stable and its study-scope
    /// routes are applied.
    #[serde(default = "default_stable_after")]
    pub study_stable_after_secs: u64,
}

fn default_stable_after() -> u64 {
    120
}

impl Default for RoutingOptions {
    fn default() -> Self {
        RoutingOptions {
            mode: Mode::default(),
            fallback: Vec::new(),
            study_stable_after_secs: default_stable_after(),
        }
    }
}

/// How matching routes combine; only sets the default of each route's `stop`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Evaluation ends at the first matching route (unless it says `stop = false`).
    #[default]
    FirstMatch,
    /// Every matching route applies (unless one says `stop = true`).
    AllMatches,
}

/// Whether a route acts on each instance as it arrives or on the whole study once stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Applied to each instance when it is processed.
    #[default]
    Instance,
    /// Deferred until the study is stable, then applied to all its instances with the
    /// study's derived body part as the label.
    Study,
}

/// One `[[routes]]` entry: conditions (`when`) and actions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in logs, decisions and error messages; defaults to `routes[<index>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, all of which must hold; none at all matches everything.
    #[serde(default)]
    pub when: WhenConfig,
    /// Destination names (from `[[destinations]]`) the instance is forwarded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Attributes to set: keyword or `(gggg,eeee)` → value (DICOM string form).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Attributes to remove: keywords or `(gggg,eeee)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Drop the instance (logged, not forwarded anywhere, fallback not used). Ends evaluation.
    #[serde(default)]
    pub drop: bool,
    /// C-STORE priority of the forward jobs; the highest among matching routes wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// `instance` (default) or `study`.
    #[serde(default)]
    pub scope: Scope,
    /// End evaluation after this route when it matches; default from `routing.mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    /// Study scope only: write the study's derived body part to all its instances
    /// (default true for study-scope routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<bool>,
}

/// A value that may be written as a single item or as an array (`"CR"` or `["CR", "DX"]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single item.
    One(T),
    /// An array of items.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The items as a slice, whichever way they were written.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

/// The `when` table of a route: every condition present must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhenConfig {
    /// AI label(s), e.g. `"KNEE"` or `["KNEE", "ANKLE"]`; `"none"` matches an abstention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<OneOrMany<String>>,
    /// Minimum confidence (inclusive, 0..=1); fails when there is no confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f32>,
    /// Maximum confidence (exclusive, 0..=1); fails when there is no confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_confidence: Option<f32>,
    /// Modality (0008,0060), one of these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<OneOrMany<String>>,
    /// Attribute conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribute: Vec<AttributeCondition>,
    /// Calling AE title (the sender), one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_ae: Option<OneOrMany<String>>,
    /// Called AE title (radroute's own title as the sender addressed it), one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_ae: Option<OneOrMany<String>>,
    /// Peer address: IP addresses or CIDR blocks, one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<OneOrMany<String>>,
    /// Local-time window(s); matches when inside any of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<OneOrMany<TimeWindowConfig>>,
}

/// A condition on one attribute: exactly one of `equals`, `regex`, `exists`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeCondition {
    /// Keyword (`InstitutionName`) or tag (`(0008,0080)`, `0008,0080`, `00080080`).
    pub tag: String,
    /// The value (trailing padding ignored) or any one of its `\`-separated values equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The value matches this regular expression (unanchored; use `^…$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The attribute is present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// A weekly local-time window.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowConfig {
    /// Days (`mon` … `sun`, or ranges like `mon-fri`); empty means every day. For a window
    /// that crosses midnight the day is the day the window starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// Start, `HH:MM` or `HH:MM:SS`, inclusive; default 00:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End, exclusive; earlier than `from` means the window crosses midnight; default 24:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

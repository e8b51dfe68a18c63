//! Configuration errors found by [`crate::RuleSet::compile`], each with its location.

use std::fmt;

use thiserror::Error;

/// Where in the configuration an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A field of one `[[routes]]` entry.
    Route {
        /// Zero-based index in the `[[routes]]` array.
        index: usize,
        /// The route's `name`, if it has one.
        name: Option<String>,
        /// The field, as a dotted path (`when.attribute[0].regex`).
        field: String,
    },
    /// A field of the `[routing]` table.
    Routing {
        /// The field (`fallback`).
        field: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Route {
                index,
                name: Some(name),
                field,
            } => {
                write!(f, "routes[{index}] (\"{name}\") {field}")
            }
            Location::Route {
                index,
                name: None,
                field,
            } => write!(f, "routes[{index}] {field}"),
            Location::Routing { field } => write!(f, "routing.{field}"),
        }
    }
}

/// One configuration error: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{location}: {kind}")]
pub struct RuleError {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: RuleErrorKind,
}

/// The kinds of rule errors.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleErrorKind {
    /// A destination name that is not in `[[destinations]]`.
    #[error("unknown destination {name:?} (known: {known})")]
    UnknownDestination {
        /// The name as written.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern as written.
        pattern: String,
        /// The regex crate's message.
        reason: String,
    },
    /// An IP address or CIDR block that does not parse.
    #[error("invalid address or CIDR {text:?}: {reason}")]
    BadCidr {
        /// As written.
        text: String,
        /// Why.
        reason: String,
    },
    /// A keyword or tag that does not resolve, or may not be edited.
    #[error("invalid tag: {0}")]
    BadTag(String),
    /// A time window that does not parse or is empty.
    #[error("invalid time window: {0}")]
    BadTimeWindow(String),
    /// A confidence bound outside 0..=1 or min >= max.
    #[error("invalid confidence: {0}")]
    BadConfidence(String),
    /// A condition that can never match or is ambiguous (empty list, several operators).
    #[error("invalid condition: {0}")]
    BadCondition(String),
    /// Actions that contradict each other or a route that does nothing.
    #[error("invalid actions: {0}")]
    BadActions(String),
    /// Two routes with the same name.
    #[error("duplicate route name {0:?}")]
    DuplicateName(String),
    /// No fallback although an instance could end up with no destination.
    #[error("no fallback: {0}")]
    NoFallback(String),
}

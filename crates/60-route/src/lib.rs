//! Routing rules: from an instance's attributes and label to destinations and edits.
//!
//! This crate exists so that the routing policy (which instance goes where, which header
//! edits are made on the way, what is dropped) is declarative configuration, validated
//! once at start-up and evaluated purely, without I/O, on the blocking pool.
//!
//! * [`config`] is the serde schema of the `[routing]` table and the `[[routes]]` array that
//!   the binary embeds in its configuration file (see `docs/routing.md`).
//! * [`RuleSet::compile`] validates that configuration and reports every error with its
//!   location; [`RuleSet::evaluate`] turns a [`RouteInput`] into a [`RouteDecision`].
//! * [`StudyTracker`] is the state machine behind study-scope routes: it tells the daemon
//!   when a study is stable and derives the study's body part from its instances.
//!
//! Attributes are read through the [`Attributes`] trait so that this crate does not depend on
//! a DICOM object model; `dicom-dictionary-std` is used only to resolve keywords to tags.
#![deny(missing_docs)]

mod action;
mod condition;
pub mod config;
mod error;
mod eval;
mod net;
mod study;
mod tag;
mod time;
mod validate;

pub use action::{Edit, Priority};
pub use config::{Mode, RouteConfig, RoutesConfig, RoutingOptions, Scope};
pub use error::{Location, RuleError, RuleErrorKind};
pub use eval::{RouteDecision, RouteInput, RuleRef, RuleSet};
pub use study::{InstanceLabel, Study, StudyLabel, StudyTracker};
pub use tag::{parse_tag, Attributes, Tag};

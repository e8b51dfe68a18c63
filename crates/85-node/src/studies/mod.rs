//! Study-scope routing state behind one seam ([`StudyState`]): which instances wait for their
//! study, which studies are stable, and who routes a stable study.
//!
//! The processing step ([`crate::process`]) holds every instance deferred to a study-scope
//! route, skips the held ones when it reads pending instances, takes the stable studies with
//! all their held instances, routes them, and finishes them. Two backends:
//!
//! - [`MemoryStudies`] (single node): radroute-route's `StudyTracker` and a map of held
//!   instances under one lock. After a restart the held instances are still `received` in the
//!   queue and are processed (and held) again.
//! - [`PgStudies`] (cluster mode): tables `studies` and `study_members` in the cluster's
//!   PostgreSQL. A study whose instances arrive at several nodes is one row; taking a stable
//!   study is a lease (`FOR UPDATE SKIP LOCKED`, owner, expiry, token), so exactly one node
//!   routes it, with one study-level label computed from every node's members.

mod memory;
mod postgres;

#[cfg(test)]
mod suite;

use std::collections::HashSet;
use std::time::Duration;

use radroute_route::{InstanceLabel, Study};

pub(crate) use memory::MemoryStudies;
pub use postgres::{migrate, PgStudies, PgStudiesOptions};

/// One instance held until its study is stable, with what processing decided for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The queue's instance id.
    pub id: String,
    /// The study it belongs to.
    pub study_instance_uid: String,
    /// SOP Instance UID, label and confidence: its vote for the study's body part.
    pub instance: InstanceLabel,
    /// Processing note (kept on the instance when the study is routed).
    pub note: Option<String>,
    /// Destinations from instance-scope routes, sent together with the study's.
    pub destinations: Vec<String>,
    /// Indices of the study-scope routes it was deferred to (rule order of the rules file:
    /// every node of a cluster must run the same rules).
    pub deferred: Vec<usize>,
}

/// A stable study taken for routing: the study as the route crate sees it, and all its held
/// instances (from every node). Routed by the taker, then passed to [`StudyState::finish`].
#[derive(Debug, Clone)]
pub struct TakenStudy {
    /// The study (instances with labels, deferred routes).
    pub study: Study,
    /// Its held instances (from every node).
    pub members: Vec<Member>,
    /// The lease: only the members taken with this token are finished.
    pub(crate) token: i64,
}

/// Why the study state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("study state: {op}: {source}")]
pub struct StudyStateError {
    /// What was attempted.
    pub op: &'static str,
    /// Cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StudyStateError {
    pub(crate) fn new(
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StudyStateError {
        StudyStateError {
            op,
            source: source.into(),
        }
    }
}

/// The seam of study-scope routing state. Synchronous, like `ForwardQueue`: called from
/// blocking threads; every call of a database backend is bounded.
pub trait StudyState: Send + Sync {
    /// Records `member` as an observation of its study (restarting the study's stability
    /// timer) and holds it, atomically: a concurrent [`StudyState::take_stable`] sees both or
    /// neither. Re-holding an instance id replaces its entry.
    fn hold(&self, member: Member) -> Result<(), StudyStateError>;

    /// Ids of the held instances: the processing loop skips them.
    fn held(&self) -> Result<HashSet<String>, StudyStateError>;

    /// Takes the studies without a new instance for `stable_after`, each with all its held
    /// instances, exclusively: no other caller (node) gets them until they are finished or the
    /// taker's lease lapses.
    fn take_stable(&self, stable_after: Duration) -> Result<Vec<TakenStudy>, StudyStateError>;

    /// Ends a routed study: its taken members are no longer held. Instances held after the take
    /// stay and form the study's next round.
    fn finish(&self, study: &TakenStudy) -> Result<(), StudyStateError>;
}

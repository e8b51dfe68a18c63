//! Study-level routing state: which studies are stable, and their derived body part.
//!
//! The daemon feeds every instance deferred to a study-scope route into a [`StudyTracker`],
//! polls [`StudyTracker::take_stable`] (e.g. every few seconds) and routes each returned
//! [`Study`] with [`crate::RuleSet::evaluate_study`]. Time is passed in, so the logic is pure.
//! The tracker is in memory; after a restart the daemon re-observes pending instances.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::eval::RuleRef;

/// The label of one instance of a study, as the classifier gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLabel {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Body part label; `None` when the model abstained.
    pub label: Option<String>,
    /// Confidence of the label.
    pub confidence: Option<f32>,
}

/// A study's derived body part.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyLabel {
    /// The winning label, or `None` (no labelled instance, or a tie).
    pub label: Option<String>,
    /// Mean over *all* instances of the confidence for the winning label (instances with
    /// another label or none count 0); `None` when `label` is `None`.
    pub confidence: Option<f32>,
    /// Summed weight per label, for logging.
    pub votes: BTreeMap<String, f32>,
}

/// One study being collected.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Instances seen, in arrival order (a re-sent SOP Instance UID replaces its entry).
    pub instances: Vec<InstanceLabel>,
    /// Arrival time of the latest instance.
    pub last_arrival: Instant,
    deferred: BTreeSet<usize>,
}

impl Study {
    /// An empty study whose latest instance arrived at `last_arrival`: for a study whose state
    /// is kept elsewhere (cluster mode keeps it in PostgreSQL) and rebuilt with [`Study::add`].
    pub fn new(study_instance_uid: &str, last_arrival: Instant) -> Study {
        Study {
            study_instance_uid: study_instance_uid.to_string(),
            instances: Vec::new(),
            last_arrival,
            deferred: BTreeSet::new(),
        }
    }

    /// Adds an instance and the indices of the study-scope routes it was deferred to; a SOP
    /// Instance UID already present is replaced (moved to the end, as a re-send is).
    pub fn add(&mut self, instance: InstanceLabel, deferred: impl IntoIterator<Item = usize>) {
        self.instances
            .retain(|i| i.sop_instance_uid != instance.sop_instance_uid);
        self.instances.push(instance);
        self.deferred.extend(deferred);
    }

    /// Indices of the study-scope routes any instance was deferred to.
    pub fn deferred(&self) -> &BTreeSet<usize> {
        &self.deferred
    }

    /// Derives the study's body part from its instances:
    ///
    /// * each labelled instance votes for its label with weight = its confidence clamped
    ///   to 0..=1 (1.0 when it has none); abstentions do not vote;
    /// * the label with the greatest total weight wins; a tie for first place (within
    ///   1e-6), or no labelled instance at all, gives `None` (the study abstains);
    /// * confidence = winning weight / number of instances, so abstentions and dissenting
    ///   instances lower it and `min_confidence` on a study route means "how sure are we
    ///   that the study as a whole is this body part".
    pub fn body_part(&self) -> StudyLabel {
        let mut votes: BTreeMap<String, f32> = BTreeMap::new();
        for i in &self.instances {
            if let Some(label) = &i.label {
                let w = i
                    .confidence
                    .map_or(1.0, |c| if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) });
                *votes.entry(label.trim().to_ascii_uppercase()).or_default() += w;
            }
        }
        let mut ranked: Vec<(&String, f32)> = votes.iter().map(|(k, v)| (k, *v)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let winner = match ranked.as_slice() {
            [] => None,
            [(l, w)] => Some(((*l).clone(), *w)),
            [(l, w), (_, second), ..] => ((w - second).abs() > 1e-6).then(|| ((*l).clone(), *w)),
        };
        let n = self.instances.len().max(1) as f32;
        StudyLabel {
            confidence: winner.as_ref().map(|(_, w)| w / n),
            label: winner.map(|(l, _)| l),
            votes,
        }
    }
}

/// Instances seen per study with their labels and last-arrival time.
#[derive(Debug, Clone)]
pub struct StudyTracker {
    stable_after: Duration,
    studies: BTreeMap<String, Study>,
}

impl StudyTracker {
    /// A tracker that considers a study stable after `stable_after` without a new instance
    /// (use [`crate::RuleSet::study_stable_after`]).
    pub fn new(stable_after: Duration) -> StudyTracker {
        StudyTracker {
            stable_after,
            studies: BTreeMap::new(),
        }
    }

    /// Records an instance that arrived at `at` and the study-scope routes it was deferred to
    /// ([`crate::RouteDecision::deferred_to_study`]). Re-observing a SOP Instance UID updates
    /// its label; any observation restarts the study's stability timer.
    pub fn observe(
        &mut self,
        study_instance_uid: &str,
        instance: InstanceLabel,
        deferred: &[RuleRef],
        at: Instant,
    ) {
        let study = self
            .studies
            .entry(study_instance_uid.to_string())
            .or_insert_with(|| Study::new(study_instance_uid, at));
        study.add(instance, deferred.iter().map(|r| r.index));
        study.last_arrival = study.last_arrival.max(at);
    }

    /// Changes how long a study must go without a new instance before it is stable (a reload
    /// of `study_stable_after_secs`); applies to the studies being collected too.
    pub fn set_stable_after(&mut self, stable_after: Duration) {
        self.stable_after = stable_after;
    }

    /// Study Instance UIDs of the studies with no new instance for `stable_after`, in UID order.
    pub fn stable_studies(&self, now: Instant) -> Vec<String> {
        self.studies
            .values()
            .filter(|s| now.saturating_duration_since(s.last_arrival) >= self.stable_after)
            .map(|s| s.study_instance_uid.clone())
            .collect()
    }

    /// Removes and returns the stable studies; the caller routes them.
    pub fn take_stable(&mut self, now: Instant) -> Vec<Study> {
        self.stable_studies(now)
            .iter()
            .filter_map(|uid| self.studies.remove(uid))
            .collect()
    }

    /// A study being collected, if any.
    pub fn get(&self, study_instance_uid: &str) -> Option<&Study> {
        self.studies.get(study_instance_uid)
    }

    /// Number of studies being collected.
    pub fn len(&self) -> usize {
        self.studies.len()
    }

    /// Whether no study is being collected.
    pub fn is_empty(&self) -> bool {
        self.studies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(uid: &str, label: Option<&str>, conf: f32) -> InstanceLabel {
        InstanceLabel {
            sop_instance_uid: uid.into(),
            label: label.map(String::from),
            confidence: Some(conf),
        }
    }

    fn rule(index: usize) -> RuleRef {
        RuleRef {
            index,
            name: format!("r{index}"),
        }
    }

    #[test]
    fn stability_and_take() {
        let t0 = Instant::now();
        let mut t = StudyTracker::new(Duration::from_secs(60));
        t.observe("1.2", inst("a", Some("SHOULDER"), 0.9), &[rule(1)], t0);
        t.observe("1.3", inst("x", None, 0.2), &[rule(2)], t0);
        t.observe(
            "1.2",
            inst("b", Some("SHOULDER"), 0.8),
            &[rule(3)],
            t0 + Duration::from_secs(30),
        );
        assert_eq!(
            t.stable_studies(t0 + Duration::from_secs(59)),
            Vec::<String>::new()
        );
        assert_eq!(
            t.stable_studies(t0 + Duration::from_secs(60)),
            vec!["1.3".to_string()]
        );
        let stable = t.take_stable(t0 + Duration::from_secs(90));
        assert_eq!(stable.len(), 2);
        assert!(t.is_empty());
        let s = &stable[0];
        assert_eq!(s.instances.len(), 2);
        assert_eq!(s.deferred().iter().copied().collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn resend_replaces_instance() {
        let t0 = Instant::now();
        let mut t = StudyTracker::new(Duration::from_secs(1));
        t.observe("s", inst("a", None, 0.3), &[], t0);
        t.observe("s", inst("a", Some("KNEE"), 0.9), &[], t0);
        let s = t.get("s").expect("study");
        assert_eq!(s.instances.len(), 1);
        assert_eq!(s.body_part().label.as_deref(), Some("KNEE"));
    }

    #[test]
    fn rebuilt_study_equals_observed_one() {
        let t0 = Instant::now();
        let mut t = StudyTracker::new(Duration::from_secs(1));
        t.observe("s", inst("a", None, 0.3), &[rule(2)], t0);
        t.observe("s", inst("b", Some("KNEE"), 0.9), &[rule(0)], t0);
        t.observe("s", inst("a", Some("KNEE"), 0.8), &[], t0);
        let mut rebuilt = Study::new("s", t0);
        rebuilt.add(inst("a", None, 0.3), [2]);
        rebuilt.add(inst("b", Some("KNEE"), 0.9), [0]);
        rebuilt.add(inst("a", Some("KNEE"), 0.8), []);
        assert_eq!(t.get("s"), Some(&rebuilt));
        assert_eq!(
            rebuilt.deferred().iter().copied().collect::<Vec<_>>(),
            vec![0, 2]
        );
    }

    #[test]
    fn stable_after_can_change() {
        let t0 = Instant::now();
        let mut t = StudyTracker::new(Duration::from_secs(600));
        t.observe("s", inst("a", None, 0.3), &[], t0);
        assert!(t.stable_studies(t0 + Duration::from_secs(5)).is_empty());
        t.set_stable_after(Duration::from_secs(5));
        assert_eq!(
            t.stable_studies(t0 + Duration::from_secs(5)),
            vec!["s".to_string()]
        );
    }

    fn study(instances: Vec<InstanceLabel>) -> Study {
        Study {
            study_instance_uid: "s".into(),
            instances,
            last_arrival: Instant::now(),
            deferred: BTreeSet::new(),
        }
    }

    #[test]
    fn body_part_weighted_majority() {
        // Two confident shoulders outweigh three unsure humeri? 0.9+0.95=1.85 vs 3*0.5=1.5.
        let s = study(vec![
            inst("1", Some("SHOULDER"), 0.9),
            inst("2", Some("SHOULDER"), 0.95),
            inst("3", Some("HUMERUS"), 0.5),
            inst("4", Some("HUMERUS"), 0.5),
            inst("5", Some("HUMERUS"), 0.5),
            inst("6", None, 0.1),
        ]);
        let b = s.body_part();
        assert_eq!(b.label.as_deref(), Some("SHOULDER"));
        let c = b.confidence.expect("confidence");
        assert!((c - 1.85 / 6.0).abs() < 1e-6, "{c}");
    }

    #[test]
    fn body_part_tie_and_abstentions() {
        let tie = study(vec![
            inst("1", Some("KNEE"), 0.8),
            inst("2", Some("ANKLE"), 0.8),
        ]);
        assert_eq!(tie.body_part().label, None);
        assert_eq!(tie.body_part().confidence, None);
        let none = study(vec![inst("1", None, 0.4), inst("2", None, 0.3)]);
        assert_eq!(none.body_part().label, None);
        let one = study(vec![inst("1", None, 0.4), inst("2", Some("hand"), 0.6)]);
        let b = one.body_part();
        assert_eq!(b.label.as_deref(), Some("HAND"));
        assert_eq!(b.confidence, Some(0.3));
        let no_conf = study(vec![InstanceLabel {
            sop_instance_uid: "1".into(),
            label: Some("CHEST".into()),
            confidence: None,
        }]);
        assert_eq!(no_conf.body_part().confidence, Some(1.0));
    }
}

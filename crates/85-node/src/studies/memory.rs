//! [`MemoryStudies`]: the single-node backend of [`StudyState`], radroute-route's
//! `StudyTracker` and the held instances under one lock, in this process's memory.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use radroute_route::{RuleRef, StudyTracker};

use super::{Member, StudyState, StudyStateError, TakenStudy};

/// Study state in memory (single node). Stability is measured with the monotonic clock.
pub(crate) struct MemoryStudies {
    inner: Mutex<Inner>,
}

struct Inner {
    tracker: StudyTracker,
    /// Held instances with the token of the take that took them (`None`: not taken yet).
    held: HashMap<String, (Member, Option<i64>)>,
    /// The last token handed out.
    tokens: i64,
}

impl Default for MemoryStudies {
    fn default() -> Self {
        MemoryStudies {
            inner: Mutex::new(Inner {
                // Set from the rules on every take.
                tracker: StudyTracker::new(Duration::from_secs(60)),
                held: HashMap::new(),
                tokens: 0,
            }),
        }
    }
}

impl StudyState for MemoryStudies {
    fn hold(&self, member: Member) -> Result<(), StudyStateError> {
        let deferred: Vec<RuleRef> = member
            .deferred
            .iter()
            .map(|&index| RuleRef {
                index,
                name: String::new(),
            })
            .collect();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tracker.observe(
            &member.study_instance_uid,
            member.instance.clone(),
            &deferred,
            Instant::now(),
        );
        inner.held.insert(member.id.clone(), (member, None));
        Ok(())
    }

    fn held(&self) -> Result<HashSet<String>, StudyStateError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(inner.held.keys().cloned().collect())
    }

    fn take_stable(&self, stable_after: Duration) -> Result<Vec<TakenStudy>, StudyStateError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tracker.set_stable_after(stable_after);
        let stable = inner.tracker.take_stable(Instant::now());
        let mut taken = Vec::with_capacity(stable.len());
        for study in stable {
            inner.tokens += 1;
            let token = inner.tokens;
            let mut members: Vec<Member> = inner
                .held
                .values_mut()
                .filter(|(m, t)| t.is_none() && m.study_instance_uid == study.study_instance_uid)
                .map(|(m, t)| {
                    *t = Some(token);
                    m.clone()
                })
                .collect();
            members.sort_by(|a, b| a.id.cmp(&b.id));
            taken.push(TakenStudy {
                study,
                members,
                token,
            });
        }
        Ok(taken)
    }

    fn finish(&self, study: &TakenStudy) -> Result<(), StudyStateError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.held.retain(|_, (_, t)| *t != Some(study.token));
        Ok(())
    }
}

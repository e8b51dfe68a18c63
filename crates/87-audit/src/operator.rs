//! The in-process record of operator actions (who, what, when) that the console and
//! `GET /api/v1/audit` show: the most recent [`OperatorLog::CAPACITY`] actions, newest first.
//! It lives as long as the process; the audit repository (when configured) keeps the history.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorActionKind {
    /// Retried one job.
    RetryJob,
    /// Dropped one job.
    DropJob,
    /// Retried dead letters in bulk (all, or one destination's).
    RetryDead,
    /// Reloaded the configuration (rules, destinations).
    ReloadRules,
    /// Sent a C-ECHO to a destination.
    Echo,
}

impl OperatorActionKind {
    /// A short stable name (`retry`, `drop`, `retry-dead`, `reload`, `echo`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorActionKind::RetryJob => "retry",
            OperatorActionKind::DropJob => "drop",
            OperatorActionKind::RetryDead => "retry-dead",
            OperatorActionKind::ReloadRules => "reload",
            OperatorActionKind::Echo => "echo",
        }
    }
}

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who: the token identity (`admin` for the single `[admin] token`, `anonymous` with no
    /// token, `SIGHUP` for a reload by signal).
    pub who: String,
    /// From where (the client's IP address), when known.
    pub from: Option<String>,
    /// What.
    pub kind: OperatorActionKind,
    /// On what: `job/42`, `destination/pacs`, `rules`...
    pub target: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// What happened, in words (e.g. "3 dead letters requeued", or the error).
    pub detail: String,
}

impl OperatorAction {
    /// An action that happened now.
    pub fn now(
        who: impl Into<String>,
        from: Option<String>,
        kind: OperatorActionKind,
        target: impl Into<String>,
        outcome: Result<String, String>,
    ) -> OperatorAction {
        let (succeeded, detail) = match outcome {
            Ok(d) => (true, d),
            Err(e) => (false, e),
        };
        OperatorAction {
            at: Utc::now(),
            who: who.into(),
            from,
            kind,
            target: target.into(),
            succeeded,
            detail,
        }
    }
}

/// A bounded, newest-first record of operator actions.
#[derive(Debug, Default)]
pub struct OperatorLog {
    entries: Mutex<VecDeque<OperatorAction>>,
}

impl OperatorLog {
    /// How many actions are kept; older ones fall off.
    pub const CAPACITY: usize = 1000;

    /// Records one action.
    pub fn push(&self, action: OperatorAction) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == Self::CAPACITY {
            entries.pop_back();
        }
        entries.push_front(action);
    }

    /// The `limit` most recent actions, newest first.
    pub fn recent(&self, limit: usize) -> Vec<OperatorAction> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let log = OperatorLog::default();
        for i in 0..OperatorLog::CAPACITY + 5 {
            log.push(OperatorAction::now(
                "admin",
                None,
                OperatorActionKind::RetryJob,
                format!("job/{i}"),
                Ok("requeued".into()),
            ));
        }
        let recent = log.recent(usize::MAX);
        assert_eq!(recent.len(), OperatorLog::CAPACITY);
        assert_eq!(
            recent[0].target,
            format!("job/{}", OperatorLog::CAPACITY + 4)
        );
        assert_eq!(log.recent(2).len(), 2);
    }
}

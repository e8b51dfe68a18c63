//! Samples of the node's counters, so the overview can show rates (images/s in and out) and
//! the last hour (labels per class, abstentions) from cumulative counters; and the latest
//! C-ECHO result per destination.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use crate::source::Counters;
use crate::ConsoleState;

/// How often the sampler reads the counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long samples are kept.
const KEEP: Duration = Duration::from_secs(3600);
/// The window of the rates.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// The latest C-ECHO of a destination from the console.
#[derive(Debug, Clone)]
pub struct EchoResult {
    /// Unix milliseconds.
    pub at: i64,
    /// Round trip, or the error.
    pub result: Result<Duration, String>,
}

/// Counter samples and echo results.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<(Instant, Counters)>>,
    echoes: Mutex<HashMap<String, EchoResult>>,
}

/// What the overview shows from the samples.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Instances stored per second.
    pub rate_in: f64,
    /// Jobs delivered per second.
    pub rate_out: f64,
    /// Labels written in the window, by label.
    pub labels: BTreeMap<String, u64>,
    /// Abstentions in the window, by reason.
    pub abstentions: BTreeMap<String, u64>,
    /// How far back the window reaches (less than an hour after a start).
    pub span: Duration,
}

fn delta(now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(then.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

impl History {
    /// Adds a sample (and forgets those older than an hour).
    pub fn sample(&self, at: Instant, counters: Counters) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((at, counters));
        while s.front().is_some_and(|(t, _)| at.duration_since(*t) > KEEP) {
            s.pop_front();
        }
    }

    /// Rates over the last ~30 s and totals over the last hour, ending at `now`'s counters.
    pub fn window(&self, now: Instant, current: &Counters) -> Window {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = s.front() else {
            return Window::default();
        };
        let (oldest_at, oldest) = (first.0, &first.1);
        let rate_base = s
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
            .unwrap_or(first);
        let dt = now.duration_since(rate_base.0).as_secs_f64();
        let rate = |a: u64, b: u64| {
            if dt > 0.5 {
                a.saturating_sub(b) as f64 / dt
            } else {
                0.0
            }
        };
        Window {
            rate_in: rate(current.received, rate_base.1.received),
            rate_out: rate(current.forwarded, rate_base.1.forwarded),
            labels: delta(&current.labels, &oldest.labels),
            abstentions: delta(&current.abstentions, &oldest.abstentions),
            span: now.duration_since(oldest_at),
        }
    }

    /// Remembers a C-ECHO result.
    pub fn echoed(&self, destination: &str, result: EchoResult) {
        self.echoes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(destination.to_string(), result);
    }

    /// The latest C-ECHO result of a destination.
    pub fn echo(&self, destination: &str) -> Option<EchoResult> {
        self.echoes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(destination)
            .cloned()
    }
}

/// Samples the counters every 10 s while the console's state lives (a weak reference: the
/// task ends with the router). Does nothing outside a tokio runtime.
pub fn spawn_sampler(state: &ConsoleState) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let history: Weak<History> = std::sync::Arc::downgrade(&state.history);
    let node = std::sync::Arc::downgrade(&state.node);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let (Some(history), Some(node)) = (history.upgrade(), node.upgrade()) else {
                return;
            };
            let counters = tokio::task::spawn_blocking(move || node.facts().counters).await;
            if let Ok(counters) = counters {
                history.sample(Instant::now(), counters);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(received: u64, hand: u64) -> Counters {
        Counters {
            received,
            forwarded: received / 2,
            labels: [("HAND".to_string(), hand)].into(),
            abstentions: BTreeMap::new(),
        }
    }

    #[test]
    fn rates_and_last_hour() {
        let h = History::default();
        let t0 = Instant::now();
        assert_eq!(h.window(t0, &counters(0, 0)).rate_in, 0.0);
        h.sample(t0, counters(100, 10));
        h.sample(t0 + Duration::from_secs(30), counters(160, 12));
        let now = t0 + Duration::from_secs(60);
        let w = h.window(now, &counters(220, 15));
        // (220 - 160) over the 30 s since the newest sample at least 30 s old.
        assert!((w.rate_in - 2.0).abs() < 1e-9, "{w:?}");
        assert!((w.rate_out - 1.0).abs() < 1e-9, "{w:?}");
        assert_eq!(w.labels.get("HAND"), Some(&5));
        assert_eq!(w.span, Duration::from_secs(60));
    }

    #[test]
    fn samples_older_than_an_hour_are_forgotten() {
        let h = History::default();
        let t0 = Instant::now();
        h.sample(t0, counters(0, 0));
        h.sample(t0 + Duration::from_secs(3700), counters(10, 1));
        let w = h.window(t0 + Duration::from_secs(3700), &counters(10, 1));
        assert_eq!(w.span, Duration::ZERO);
        assert!(w.labels.is_empty());
    }
}

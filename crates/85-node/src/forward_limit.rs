//! How many associations a destination really serves at once, learned from how it answers
//! (issue 14): the pure bookkeeping behind [`crate::forward_gate::Gate`], without clocks,
//! locks or I/O, so that every rule can be tested on its own.
//!
//! A destination configured for `associations = N` may serve fewer at a time: a PACS or
//! workstation running one association after the other (dcmtk `storescp` without `--fork`)
//! accepts the TCP connection of a second one but answers its A-ASSOCIATE-RQ only once the
//! first is released. The rules:
//! - an association opens only when fewer than the learned limit are open or opening, none of
//!   them lingers idle (an idle one takes the next batch) and no opening is stalled;
//! - an opening whose A-ASSOCIATE-AC takes longer than [`Limit::patience`] while siblings are open
//!   is *stalled*: the limit drops to the siblings that are open (at least 1, multiplicative
//!   decrease), and the siblings release their association after their batch instead of
//!   lingering ([`Limit::should_release`]), so the stalled one gets in;
//! - after a back-off (doubling after each stall, up to [`MAX_BACKOFF`]) the limit goes up by one
//!   again (additive increase): the next opening beside a busy sibling probes the destination.

use std::time::{Duration, Instant};

/// The shortest wait for an A-ASSOCIATE-AC that counts as a stall (while siblings are open).
pub const MIN_PATIENCE: Duration = Duration::from_millis(300);
/// The longest: a destination that answers slower than this beside a sibling is treated as
/// serving fewer associations, whatever its usual answer time.
pub const MAX_PATIENCE: Duration = Duration::from_secs(5);
/// A stall counts when the answer takes this many times the usual (uncontended) answer time.
const PATIENCE_FACTOR: u32 = 4;
/// The first back-off before the limit is raised again after a stall.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest back-off: a one-association destination is probed at most this rarely.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// The learned association limit of one destination and the associations open to it.
#[derive(Debug, Clone)]
pub struct Limit {
    /// The configured `associations` (the maximum).
    max: usize,
    /// The learned limit, 1..=max.
    limit: usize,
    /// Associations open or opening.
    open: usize,
    /// Open associations lingering without work.
    idle: usize,
    /// Openings waiting past their patience.
    stalled: usize,
    /// The usual A-ASSOCIATE-AC time with no sibling open (smoothed), once seen.
    usual: Option<Duration>,
    /// When the limit goes up by one again (only while below `max`).
    raise_at: Option<Instant>,
    /// The back-off after the next stall.
    backoff: Duration,
}

impl Limit {
    /// A destination configured for `max` associations (at least 1): all of them allowed until
    /// it shows otherwise.
    pub fn new(max: usize) -> Limit {
        let max = max.max(1);
        Limit {
            max,
            limit: max,
            open: 0,
            idle: 0,
            stalled: 0,
            usual: None,
            raise_at: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The learned limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Associations open or opening now.
    pub fn open(&self) -> usize {
        self.open
    }

    /// A reload changed the configured maximum: a destination that served all it was given
    /// gets the new maximum; a learned lower limit stays (capped by the new maximum).
    pub fn set_max(&mut self, max: usize) {
        let max = max.max(1);
        if self.limit >= self.max {
            self.limit = max;
        }
        self.max = max;
        self.limit = self.limit.min(max);
        if self.limit >= self.max {
            self.raise_at = None;
        }
    }

    /// Raises the limit by one when its back-off is over (additive increase). True when it
    /// changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.raise_at {
            Some(at) if now >= at && self.limit < self.max => {
                self.limit += 1;
                self.raise_at = (self.limit < self.max).then_some(now + self.backoff);
                true
            }
            _ => false,
        }
    }

    /// Takes a slot for a new association when one may open now (see the module rules).
    pub fn try_open(&mut self, now: Instant) -> bool {
        self.tick(now);
        let ok = self.open < self.limit && self.idle == 0 && self.stalled == 0;
        if ok {
            self.open += 1;
        }
        ok
    }

    /// An association (open or opening) is gone; its slot is free.
    pub fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// An open association starts (`true`) or stops (`false`) lingering without work.
    pub fn set_idle(&mut self, idle: bool) {
        if idle {
            self.idle += 1;
        } else {
            self.idle = self.idle.saturating_sub(1);
        }
    }

    /// How long an opening may wait for its A-ASSOCIATE-AC beside open siblings before it counts
    /// as stalled: a few times the usual answer time, within [`MIN_PATIENCE`, `MAX_PATIENCE`].
    pub fn patience(&self) -> Duration {
        self.usual
            .map(|u| u * PATIENCE_FACTOR)
            .unwrap_or(MIN_PATIENCE)
            .clamp(MIN_PATIENCE, MAX_PATIENCE)
    }

    /// An opening got its answer after `took`, with `siblings` other associations open or
    /// opening when it started. An answer beside siblings within patience confirms the limit
    /// (the back-off starts from the beginning again).
    pub fn opened(&mut self, siblings: usize, took: Duration) {
        if siblings == 0 {
            self.usual = Some(match self.usual {
                // Smoothed, so one slow answer does not make the patience long.
                Some(u) => (u * 7 + took) / 8,
                None => took,
            });
        } else if took <= self.patience() {
            self.backoff = FIRST_BACKOFF;
        }
    }

    /// An opening has waited past [`Limit::patience`] while `siblings` other associations were
    /// open: the destination serves no more than those (multiplicative decrease), tried again
    /// after the back-off. Call [`Limit::unstalled`] once the opening ends, however it ends.
    /// True when the limit changed.
    pub fn stalled(&mut self, siblings: usize, now: Instant) -> bool {
        self.stalled += 1;
        let before = self.limit;
        self.limit = siblings.clamp(1, self.limit);
        if self.limit < self.max {
            self.raise_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        self.limit != before
    }

    /// A stalled opening ended (answered, failed or given up).
    pub fn unstalled(&mut self) {
        self.stalled = self.stalled.saturating_sub(1);
    }

    /// True when an open association should be released after its batch instead of lingering
    /// or taking another: an opening waits for the destination to serve it, or more are open
    /// than the limit.
    pub fn should_release(&self) -> bool {
        self.stalled > 0 || self.open > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn all_configured_associations_open_while_none_lingers() {
        let now = Instant::now();
        let mut l = Limit::new(3);
        assert!(l.try_open(now) && l.try_open(now) && l.try_open(now));
        assert!(!l.try_open(now), "a fourth beyond associations = 3");
        l.closed();
        assert!(l.try_open(now));
    }

    #[test]
    fn an_idle_association_takes_the_work_before_a_new_one_opens() {
        let now = Instant::now();
        let mut l = Limit::new(2);
        assert!(l.try_open(now));
        l.set_idle(true);
        assert!(
            !l.try_open(now),
            "opened a second while the first lingers idle"
        );
        l.set_idle(false);
        assert!(l.try_open(now), "the first is busy: a second may open");
    }

    #[test]
    fn a_stall_beside_a_sibling_learns_one_association_and_releases_the_sibling() {
        let now = Instant::now();
        let mut l = Limit::new(2);
        assert!(l.try_open(now));
        l.opened(0, ms(5));
        assert!(l.try_open(now));
        assert!(!l.should_release());
        assert!(l.stalled(1, now), "the limit did not change");
        assert_eq!(l.limit(), 1);
        assert!(
            l.should_release(),
            "the sibling keeps the destination's only slot"
        );
        // The sibling releases; the stalled one gets its answer.
        l.closed();
        l.unstalled();
        l.opened(1, Duration::from_secs(2));
        assert!(!l.should_release());
        assert!(!l.try_open(now), "a second association at limit 1");
        // Limits never go below one, nor above what they were.
        assert!(!l.stalled(0, now));
        assert_eq!(l.limit(), 1);
    }

    #[test]
    fn an_opening_waits_while_another_is_stalled() {
        let now = Instant::now();
        let mut l = Limit::new(4);
        assert!(l.try_open(now) && l.try_open(now));
        l.stalled(2, now);
        assert_eq!(l.limit(), 2);
        assert!(!l.try_open(now), "opened beside a stalled opening");
        l.unstalled();
        assert!(!l.try_open(now), "3 open at limit 2");
    }

    #[test]
    fn more_open_than_the_limit_release_until_within_it() {
        let now = Instant::now();
        let mut l = Limit::new(4);
        for _ in 0..4 {
            assert!(l.try_open(now));
        }
        l.stalled(1, now);
        l.unstalled();
        let mut released = 0;
        while l.should_release() {
            l.closed();
            released += 1;
        }
        assert_eq!((released, l.open()), (3, 1));
    }

    #[test]
    fn the_limit_rises_by_one_after_a_backoff_that_doubles_with_each_stall() {
        let t0 = Instant::now();
        let mut l = Limit::new(3);
        l.stalled(1, t0);
        l.unstalled();
        assert_eq!(l.limit(), 1);
        assert!(!l.tick(t0 + FIRST_BACKOFF - ms(1)));
        assert!(l.tick(t0 + FIRST_BACKOFF));
        assert_eq!(l.limit(), 2);
        // The probe stalls again: back to one, next probe twice as late.
        let t1 = t0 + FIRST_BACKOFF;
        l.stalled(1, t1);
        l.unstalled();
        assert_eq!(l.limit(), 1);
        assert!(!l.tick(t1 + FIRST_BACKOFF));
        assert!(l.tick(t1 + FIRST_BACKOFF * 2));
        // A prompt answer beside a sibling confirms it and resets the back-off.
        l.opened(1, ms(10));
        let t2 = t1 + FIRST_BACKOFF * 2;
        assert!(!l.tick(t2 + FIRST_BACKOFF - ms(1)));
        assert!(l.tick(t2 + FIRST_BACKOFF * 4), "not raised to the maximum");
        assert_eq!(l.limit(), 3);
        assert!(!l.tick(t2 + MAX_BACKOFF * 10), "raised past the maximum");
    }

    #[test]
    fn the_backoff_is_capped() {
        let mut now = Instant::now();
        let mut l = Limit::new(2);
        for _ in 0..20 {
            l.stalled(1, now);
            l.unstalled();
            now += MAX_BACKOFF;
            assert!(l.tick(now), "not probed again within the longest back-off");
        }
    }

    #[test]
    fn patience_follows_the_usual_answer_time_within_bounds() {
        let mut l = Limit::new(2);
        assert_eq!(l.patience(), MIN_PATIENCE);
        l.opened(0, ms(400));
        assert_eq!(l.patience(), ms(1600));
        l.opened(0, Duration::from_secs(60));
        assert_eq!(l.patience(), MAX_PATIENCE);
        // Answers beside siblings do not count as usual: they may have waited for a slot.
        let mut l = Limit::new(2);
        l.opened(0, ms(1));
        l.opened(1, Duration::from_secs(3));
        assert_eq!(l.patience(), MIN_PATIENCE);
    }

    #[test]
    fn a_reload_keeps_a_learned_limit_and_gives_a_full_one_the_new_maximum() {
        let now = Instant::now();
        let mut full = Limit::new(2);
        full.set_max(4);
        assert_eq!(full.limit(), 4);
        let mut learned = Limit::new(4);
        learned.stalled(1, now);
        learned.unstalled();
        learned.set_max(8);
        assert_eq!((learned.limit(), learned.max()), (1, 8));
        learned.set_max(0);
        assert_eq!((learned.limit(), learned.max()), (1, 1));
        assert!(
            !learned.tick(now + MAX_BACKOFF * 2),
            "raised past a maximum of 1"
        );
    }
}

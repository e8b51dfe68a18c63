//! Weekly local-time windows for the `time` condition.

use chrono::{Datelike, NaiveDateTime, NaiveTime, Timelike, Weekday};

use crate::config::TimeWindowConfig;

/// A compiled time window: a set of days and [from, to) in seconds since midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    /// Bit i set = day i (Monday = 0) allowed.
    days: u8,
    from: u32,
    to: u32,
}

fn day_index(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<Weekday>()
        .map(|d| d.num_days_from_monday())
        .map_err(|_| format!("unknown day {text:?} (mon … sun)"))
}

fn parse_time(text: &str, field: &str) -> Result<u32, String> {
    if text.trim() == "24:00" {
        return Ok(24 * 3600);
    }
    NaiveTime::parse_from_str(text.trim(), "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M"))
        .map(|t| t.num_seconds_from_midnight())
        .map_err(|_| format!("{field} {text:?} is not HH:MM or HH:MM:SS"))
}

impl TimeWindow {
    pub(crate) fn compile(cfg: &TimeWindowConfig) -> Result<TimeWindow, String> {
        let mut days = 0u8;
        for d in &cfg.days {
            match d.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day_index(a)?, day_index(b)?);
                    let mut i = a;
                    loop {
                        days |= 1 << i;
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                }
                None => days |= 1 << day_index(d)?,
            }
        }
        if cfg.days.is_empty() {
            days = 0x7f;
        }
        let from = match &cfg.from {
            Some(f) => parse_time(f, "from")?,
            None => 0,
        };
        let to = match &cfg.to {
            Some(t) => parse_time(t, "to")?,
            None => 24 * 3600,
        };
        if from == to {
            return Err(format!(
                "from and to are equal ({}), the window is empty",
                cfg.from.as_deref().unwrap_or("00:00")
            ));
        }
        if from >= 24 * 3600 {
            return Err("from must be before 24:00".into());
        }
        Ok(TimeWindow { days, from, to })
    }

    /// Whether `now` (local time) is inside the window. A window crossing midnight belongs
    /// to the day it starts: `fri 22:00-06:00` includes Saturday 02:00.
    pub(crate) fn contains(&self, now: NaiveDateTime) -> bool {
        let secs = now.time().num_seconds_from_midnight();
        let day = now.weekday().num_days_from_monday();
        let allowed = |d: u32| self.days & (1 << d) != 0;
        if self.from < self.to {
            allowed(day) && secs >= self.from && secs < self.to
        } else {
            (secs >= self.from && allowed(day)) || (secs < self.to && allowed((day + 6) % 7))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(days: &[&str], from: &str, to: &str) -> TimeWindow {
        TimeWindow::compile(&TimeWindowConfig {
            days: days.iter().map(|s| s.to_string()).collect(),
            from: Some(from.into()),
            to: Some(to.into()),
        })
        .expect("window")
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time")
    }

    #[test]
    fn windows() {
        // 2026-11-27 is a Friday.
        let w = win(&["mon-fri"], "07:00", "19:00");
        assert!(w.contains(at("2026-11-27 07:00")));
        assert!(!w.contains(at("2026-11-27 19:00")));
        assert!(!w.contains(at("2026-11-28 10:00")));
        let night = win(&["fri"], "22:00", "06:00");
        assert!(night.contains(at("2026-11-27 23:00")));
        assert!(night.contains(at("2026-11-28 02:00")));
        assert!(!night.contains(at("2026-11-27 02:00")));
        let wrap = win(&["sat-sun"], "00:00", "24:00");
        assert!(wrap.contains(at("2026-11-29 12:00")));
        assert!(!wrap.contains(at("2026-11-30 12:00")));
        assert!(TimeWindow::compile(&TimeWindowConfig {
            days: vec!["funday".into()],
            ..Default::default()
        })
        .is_err());
        assert!(TimeWindow::compile(&TimeWindowConfig {
            from: Some("25:00".into()),
            ..Default::default()
        })
        .is_err());
        assert!(TimeWindow::compile(&TimeWindowConfig {
            from: Some("08:00".into()),
            to: Some("08:00".into()),
            ..Default::default()
        })
        .is_err());
    }
}

//! Instance ids: unique, file-system safe, sortable by reception time.
//!
//! Format: `YYYYMMDDTHHMMSS.ffffffZ-NNNNNN-RRRRRRRR`, e.g. `20261128T021530.123456Z-000042-9f3a01c2`:
//! the UTC reception time in microseconds, a per-process counter and a per-process random
//! suffix. Lexical order is time order (the counter breaks ties within a microsecond), the
//! random suffix keeps ids of two processes (or a restart with a clock that went backwards)
//! apart. The id is never derived from the SOP Instance UID: a modality may send the same UID
//! twice and both copies must be kept.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest accepted id, in bytes.
const MAX_LEN: usize = 64;

/// The spool's name for one received instance; also the primary key of the queue's
/// `instances` table (stored as TEXT, see [`InstanceId::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

/// A string that is not a valid [`InstanceId`] (empty, too long, a leading dot, or a character
/// other than ASCII letters, digits, `.`, `-`, `_`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance id {0:?}")]
pub struct InvalidInstanceId(pub String);

impl InstanceId {
    /// Generates a new id stamped with the current time.
    pub fn generate() -> InstanceId {
        InstanceId::generate_at(SystemTime::now())
    }

    /// Generates a new id stamped with `at` (tests use a fixed time to check ordering).
    pub fn generate_at(at: SystemTime) -> InstanceId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        InstanceId(format!(
            "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}.{:06}Z-{n:06}-{:08x}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            since.subsec_micros(),
            process_suffix(),
        ))
    }

    /// The id as text (what the queue stores and what the file name is made of).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = InvalidInstanceId;

    /// Accepts any file-system safe token, not only the generated format, so that the format
    /// may evolve without breaking spools written by older versions.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LEN
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            Ok(InstanceId(s.to_owned()))
        } else {
            Err(InvalidInstanceId(s.to_owned()))
        }
    }
}

/// A random 32-bit value fixed for the life of the process (std's `RandomState` is seeded from
/// the OS random source).
fn process_suffix() -> u32 {
    static SUFFIX: OnceLock<u32> = OnceLock::new();
    *SUFFIX.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    })
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn format_is_utc_time_counter_suffix() {
        // 2026-11-28T02:15:30.123456Z
        let at = UNIX_EPOCH + Duration::from_micros(1_795_832_130_123_456);
        let id = InstanceId::generate_at(at);
        assert!(id.as_str().starts_with("20261128T021530.123456Z-"), "{id}");
        assert_eq!(
            id.as_str().len(),
            "20261128T021530.123456Z-000042-9f3a01c2".len()
        );
        assert_eq!(id.as_str().parse::<InstanceId>(), Ok(id.clone()));
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = InstanceId::generate_at(t0);
        let b = InstanceId::generate_at(t0 + Duration::from_micros(1));
        let c = InstanceId::generate_at(t0);
        assert!(a < b);
        assert_ne!(a, c);
        let many: std::collections::HashSet<_> =
            (0..1000).map(|_| InstanceId::generate()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn rejects_unsafe_strings() {
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?}");
        }
        assert!("legacy_id-1.2".parse::<InstanceId>().is_ok());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}

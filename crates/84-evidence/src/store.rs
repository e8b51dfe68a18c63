//! The evidence database: one SQLite file, two tables (`evidence`, `job_events`).
//!
//! Written from the processing and forward threads, read by the console; one connection
//! behind a mutex (each statement is short). Text columns keep the header values as given;
//! the search columns are also kept upper-cased and trimmed (`*_key`) so that look-ups ignore
//! case and padding without a full scan.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::record::{Evidence, JobEvent, Search};

/// Why an evidence call failed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The database cannot be opened or created.
    #[error("evidence database {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("evidence database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored JSON column does not parse (written by another version?).
    #[error("evidence database: bad stored value: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of the evidence calls.
pub type Result<T> = std::result::Result<T, EvidenceError>;

/// Largest number of rows a search returns.
pub const MAX_SEARCH: usize = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS evidence (
    instance_id TEXT PRIMARY KEY,
    recorded_at INTEGER NOT NULL,
    study_instance_uid TEXT,
    accession_key TEXT, study_date_key TEXT, modality_key TEXT, calling_ae_key TEXT,
    label_key TEXT,
    record TEXT NOT NULL,
    model_input BLOB
);
CREATE INDEX IF NOT EXISTS evidence_recorded ON evidence(recorded_at);
CREATE INDEX IF NOT EXISTS evidence_study ON evidence(study_instance_uid);
CREATE INDEX IF NOT EXISTS evidence_accession ON evidence(accession_key);
CREATE INDEX IF NOT EXISTS evidence_date ON evidence(study_date_key);
CREATE INDEX IF NOT EXISTS evidence_modality ON evidence(modality_key);
CREATE INDEX IF NOT EXISTS evidence_calling ON evidence(calling_ae_key);
CREATE INDEX IF NOT EXISTS evidence_label ON evidence(label_key);
CREATE TABLE IF NOT EXISTS job_events (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id);
";

/// Search key of a text value: trimmed (blanks and NULs), upper-case; `None` when empty.
fn key(value: Option<&str>) -> Option<String> {
    value
        .map(|v| v.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
        .filter(|v| !v.is_empty())
        .map(str::to_uppercase)
}

/// Study dates are compared without separators (`2026-12-07` finds `20261207`).
fn date_key(value: Option<&str>) -> Option<String> {
    key(value).map(|v| v.chars().filter(|c| c.is_ascii_digit()).collect())
}

/// The evidence database.
pub struct EvidenceStore {
    conn: Mutex<Connection>,
}

impl EvidenceStore {
    /// Opens (creates) the database at `path`.
    pub fn open(path: &Path) -> Result<EvidenceStore> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| EvidenceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(EvidenceStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records (or replaces, when the instance is processed again) an instance's evidence,
    /// with the model input PNG when there is one.
    pub fn record(&self, e: &Evidence, model_input_png: Option<&[u8]>) -> Result<()> {
        let json = serde_json::to_string(e)?;
        let label_key = key(e.label.as_deref()).unwrap_or_else(|| "NONE".into());
        self.conn().execute(
            "INSERT OR REPLACE INTO evidence (instance_id, recorded_at, study_instance_uid,
                accession_key, study_date_key, modality_key, calling_ae_key, label_key,
                record, model_input)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                e.instance_id,
                e.recorded_at,
                e.study_instance_uid,
                key(e.accession.as_deref()),
                date_key(e.study_date.as_deref()),
                key(e.modality.as_deref()),
                key(Some(&e.calling_ae)),
                label_key,
                json,
                model_input_png,
            ],
        )?;
        Ok(())
    }

    /// One instance's evidence.
    pub fn get(&self, instance_id: &str) -> Result<Option<Evidence>> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM evidence WHERE instance_id = ?1",
                [instance_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// The model input PNG of an instance, if recorded.
    pub fn model_input_png(&self, instance_id: &str) -> Result<Option<Vec<u8>>> {
        let png: Option<Option<Vec<u8>>> = self
            .conn()
            .query_row(
                "SELECT model_input FROM evidence WHERE instance_id = ?1",
                [instance_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(png.flatten())
    }

    /// Instances matching `q`, newest first.
    pub fn search(&self, q: &Search) -> Result<Vec<Evidence>> {
        let mut sql = String::from("SELECT record FROM evidence WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut filter = |column: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(v);
                sql.push_str(&format!(" AND {column} = ?{}", args.len()));
            }
        };
        filter("accession_key", key(q.accession.as_deref()));
        filter("study_date_key", date_key(q.study_date.as_deref()));
        filter("modality_key", key(q.modality.as_deref()));
        filter("calling_ae_key", key(q.calling_ae.as_deref()));
        filter("label_key", key(q.label.as_deref()));
        filter(
            "study_instance_uid",
            q.study_instance_uid
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        let limit = q.limit.clamp(1, MAX_SEARCH);
        sql.push_str(&format!(
            " ORDER BY recorded_at DESC, instance_id LIMIT {limit}"
        ));
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    /// Records a forward attempt or an operator action on a job.
    pub fn job_event(&self, ev: &JobEvent) -> Result<()> {
        self.conn().execute(
            "INSERT INTO job_events (job_id, at, outcome, detail) VALUES (?1, ?2, ?3, ?4)",
            params![ev.job_id, ev.at, ev.outcome, ev.detail],
        )?;
        Ok(())
    }

    /// The events of these jobs, oldest first.
    pub fn job_events(&self, job_ids: &[i64]) -> Result<Vec<JobEvent>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT job_id, at, outcome, detail FROM job_events WHERE job_id = ?1 ORDER BY at, id",
        )?;
        let mut out = Vec::new();
        for id in job_ids {
            for ev in stmt.query_map([id], job_event)? {
                out.push(ev?);
            }
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// Forgets an instance and its jobs' events (called when its files are purged).
    pub fn remove(&self, instance_id: &str, job_ids: &[i64]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM evidence WHERE instance_id = ?1", [instance_id])?;
        for id in job_ids {
            tx.execute("DELETE FROM job_events WHERE job_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn job_event(r: &Row<'_>) -> rusqlite::Result<JobEvent> {
    Ok(JobEvent {
        job_id: r.get(0)?,
        at: r.get(1)?,
        outcome: r.get(2)?,
        detail: r.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, at: i64) -> Evidence {
        Evidence {
            instance_id: id.into(),
            recorded_at: at,
            study_instance_uid: Some("1.2.3".into()),
            accession: Some("acc 42 ".into()),
            study_date: Some("20261207".into()),
            modality: Some("CR".into()),
            calling_ae: "MODALITY".into(),
            patient_name: Some("Doe^<script>".into()),
            label: Some("HAND".into()),
            scores: vec![("hand".into(), 0.97), ("knee".into(), 0.01)],
            matched: vec!["hands".into()],
            destinations: vec!["pacs".into()],
            ..Default::default()
        }
    }

    fn store() -> (tempfile::TempDir, EvidenceStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::open(&dir.path().join("evidence.sqlite")).expect("open");
        (dir, store)
    }

    #[test]
    fn record_get_and_replace() {
        let (_dir, store) = store();
        let e = sample("a", 1);
        store.record(&e, Some(b"png")).expect("record");
        assert_eq!(store.get("a").expect("get"), Some(e.clone()));
        assert_eq!(
            store.model_input_png("a").expect("png"),
            Some(b"png".to_vec())
        );
        let mut again = e.clone();
        again.label = None;
        store.record(&again, None).expect("replace");
        assert_eq!(store.get("a").expect("get"), Some(again));
        assert_eq!(store.model_input_png("a").expect("png"), None);
        assert_eq!(store.get("missing").expect("get"), None);
    }

    #[test]
    fn search_ignores_case_padding_and_date_dashes() {
        let (_dir, store) = store();
        store.record(&sample("old", 1), None).expect("record");
        let mut knee = sample("new", 2);
        knee.label = None;
        knee.modality = Some("DX".into());
        store.record(&knee, None).expect("record");
        let ids = |q: Search| -> Vec<String> {
            store
                .search(&Search { limit: 10, ..q })
                .expect("search")
                .into_iter()
                .map(|e| e.instance_id)
                .collect()
        };
        assert_eq!(ids(Search::default()), ["new", "old"]);
        let acc = Search {
            accession: Some(" ACC 42".into()),
            ..Default::default()
        };
        assert_eq!(ids(acc), ["new", "old"]);
        let dx = Search {
            modality: Some("dx".into()),
            ..Default::default()
        };
        assert_eq!(ids(dx), ["new"]);
        let date = Search {
            study_date: Some("2026-12-07".into()),
            label: Some("hand".into()),
            ..Default::default()
        };
        assert_eq!(ids(date), ["old"]);
        let unlabelled = Search {
            label: Some("none".into()),
            ..Default::default()
        };
        assert_eq!(ids(unlabelled), ["new"]);
        let other_ae = Search {
            calling_ae: Some("OTHER".into()),
            ..Default::default()
        };
        assert!(ids(other_ae).is_empty());
        // A quote in a filter is a value, not SQL.
        let hostile = Search {
            accession: Some("' OR 1=1 --".into()),
            ..Default::default()
        };
        assert!(ids(hostile).is_empty());
    }

    #[test]
    fn events_in_order_and_remove_forgets_everything() {
        let (_dir, store) = store();
        store.record(&sample("a", 1), Some(b"png")).expect("record");
        for (job_id, at, outcome) in [(7, 5, "delivered"), (7, 3, "retry"), (8, 4, "dead")] {
            store
                .job_event(&JobEvent {
                    job_id,
                    at,
                    outcome: outcome.into(),
                    detail: None,
                })
                .expect("event");
        }
        let events = store.job_events(&[7]).expect("events");
        let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(outcomes, ["retry", "delivered"]);
        assert_eq!(store.job_events(&[7, 8]).expect("events").len(), 3);
        store.remove("a", &[7]).expect("remove");
        assert_eq!(store.get("a").expect("get"), None);
        assert!(store.job_events(&[7]).expect("events").is_empty());
        assert_eq!(store.job_events(&[8]).expect("events").len(), 1);
        assert_eq!(store.model_input_png("a").expect("png"), None);
    }
}

//! Mapping driver, pool and timeout failures to [`SpoolError::Backend`].

use std::fmt::Display;
use std::time::Duration;

use radroute_spool::{FileKind, InstanceId, SpoolError};
use tokio_postgres::error::SqlState;

/// The boxed error type of callers' transaction steps ([`crate::PgStore::put_with`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Names the object an operation concerns, for error messages.
pub(crate) fn target(kind: FileKind, id: &InstanceId) -> String {
    format!("{kind} object of {id}")
}

/// A failed statement; `full` when PostgreSQL says its disk is full.
pub(crate) fn db(op: &'static str, target: impl Display, e: tokio_postgres::Error) -> SpoolError {
    let full = e.code() == Some(&SqlState::DISK_FULL);
    SpoolError::Backend {
        backend: "postgres",
        op,
        target: target.to_string(),
        full,
        source: Box::new(e),
    }
}

/// Any other failure (pool, local scratch I/O inside a backend call, a caller's step).
pub(crate) fn other(op: &'static str, target: impl Display, e: impl Into<BoxError>) -> SpoolError {
    SpoolError::Backend {
        backend: "postgres",
        op,
        target: target.to_string(),
        full: false,
        source: e.into(),
    }
}

/// An operation that did not finish within its bound.
pub(crate) fn timeout(op: &'static str, target: impl Display, after: Duration) -> SpoolError {
    other(
        op,
        target,
        format!("no answer from PostgreSQL within {} ms", after.as_millis()),
    )
}

/// The `NotFound` of an object that is not in the database.
pub(crate) fn not_found(kind: FileKind, id: &InstanceId) -> SpoolError {
    SpoolError::NotFound {
        kind,
        id: id.to_string(),
        path: format!("postgres:instance_objects/{kind}/{id}").into(),
    }
}

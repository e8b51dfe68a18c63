//! Driver and pool errors to [`QueueError`]: connection trouble becomes `Unavailable`
//! (transient: A700 for a store, 503 for the API), anything else `Backend`.

use deadpool_postgres::PoolError;
use radroute_queue::QueueError;
use tokio_postgres::error::SqlState;

/// A tokio-postgres error of operation `op`, with the causes its own text leaves out (e.g.
/// "error performing TLS handshake" gains rustls' "invalid peer certificate: UnknownIssuer").
pub(crate) fn db(op: &'static str, e: tokio_postgres::Error) -> QueueError {
    let source = with_causes(&e).into();
    if is_transient(&e) {
        QueueError::Unavailable { op, source }
    } else {
        QueueError::Backend { op, source }
    }
}

/// `error: cause: cause ...`, skipping a cause whose text the previous one already shows.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A pool error (no connection within the wait timeout, connect refused, ...).
pub(crate) fn pool(op: &'static str, e: PoolError) -> QueueError {
    match e {
        PoolError::Backend(e) => db(op, e),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => QueueError::Backend {
            op,
            source: Box::new(e),
        },
        other => QueueError::Unavailable {
            op,
            source: Box::new(other),
        },
    }
}

/// A call that ran past its deadline.
pub(crate) fn timed_out(op: &'static str, after: std::time::Duration) -> QueueError {
    QueueError::Unavailable {
        op,
        source: format!("no answer from the database within {after:?}").into(),
    }
}

/// A row that does not decode (a column of an unexpected type or value).
pub(crate) fn row(
    op: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> QueueError {
    QueueError::Backend {
        op,
        source: e.into(),
    }
}

/// Connection-level trouble: the connection is closed or broken, the server is shutting down
/// or starting, or a statement/lock timeout fired.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: I/O and connect errors carry an io::Error (refused, reset, timed out);
        // decoding and authentication errors do not and are not transient.
        None => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if s.is::<std::io::Error>() {
                    return true;
                }
                source = s.source();
            }
            false
        }
        Some(code) => {
            code.code().starts_with("08") // connection exception
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::TOO_MANY_CONNECTIONS
        }
    }
}

/// True for a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

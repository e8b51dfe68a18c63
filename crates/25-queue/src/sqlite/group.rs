//! Group commit: concurrent writes of several threads share one transaction and one fsync.
//!
//! With `synchronous=FULL` every commit waits for an fsync of the WAL. Eight associations
//! storing at once, the processing workers routing and the forward workers completing would
//! otherwise queue behind the connection mutex and pay one fsync each, one after the other.
//!
//! A write is queued as a closure; the caller then takes the connection. Whoever gets it
//! first is the *leader*: it takes every write queued so far (its own and those of the callers
//! waiting behind it), runs each in its own savepoint inside one `BEGIN IMMEDIATE`
//! transaction, commits once and hands every caller its result. A caller whose write was
//! already committed by another leader finds its result when it gets the connection and
//! returns. So:
//!
//! - a caller returns only after the commit that holds its write (never acknowledged before
//!   it is durable); a lone caller is its own leader: no thread, no timer, no added latency;
//! - a write that fails (a duplicate id, a job in the wrong state) rolls back to its savepoint
//!   and fails alone; the others of its group go on;
//! - a failed `BEGIN` or `COMMIT`, or an error after which SQLite rolled the whole transaction
//!   back (disk full, I/O error), fails every write of the group: none of them is stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{ffi, Connection, TransactionBehavior};

use crate::{QueueError, Result};

/// A queued write: runs on the leader's thread inside the group's transaction.
type Op<T> = Box<dyn FnOnce(&Connection) -> Result<T> + Send>;

/// The writes waiting for a leader.
#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<Arc<dyn Batched>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("pending", &lock(&self.pending).len())
            .finish()
    }
}

impl GroupCommit {
    /// Runs `op` in a transaction shared with the writes of other threads and returns its
    /// result once that transaction is committed (or failed).
    pub(super) fn run<T: Send + 'static>(
        &self,
        conn: &Mutex<Connection>,
        op: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = Arc::new(Slot::<T> {
            op: Mutex::new(Some(Box::new(op))),
            result: Mutex::new(None),
            answered: AtomicBool::new(false),
        });
        lock(&self.pending).push(slot.clone());
        let mut guard = lock(conn);
        if !slot.answered.load(Ordering::Acquire) {
            self.lead(&mut guard);
        }
        drop(guard);
        let result = if slot.answered.load(Ordering::Acquire) {
            lock(&slot.result).take()
        } else {
            None
        };
        // None only if a leader took the write and panicked before answering: its
        // transaction rolled back, so the write is not stored.
        result.unwrap_or_else(|| {
            Err(group_error(&rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_ABORT),
                Some("the thread committing this write panicked".into()),
            )))
        })
    }

    /// Runs and commits every queued write, then answers their callers; called with the
    /// connection held. A write's result is published only here, after the commit: if this
    /// thread panics on the way, its callers find no answer and report an error.
    fn lead(&self, conn: &mut Connection) {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if let Err(e) = Self::commit(conn, &batch) {
            batch.iter().for_each(|w| w.fail(&e));
        }
        batch.iter().for_each(|w| w.answer());
    }

    /// One transaction for the whole batch; `Err` when it was not committed.
    fn commit(conn: &mut Connection, batch: &[Arc<dyn Batched>]) -> rusqlite::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for write in batch {
            // An error here leaves the transaction gone or in doubt: dropping `tx` rolls
            // back and nothing of the group is stored.
            write.run(&tx)?;
        }
        tx.commit()
    }
}

/// A queued write whose result type is erased, so writes of every kind share a group.
trait Batched: Send + Sync {
    /// Runs the write in a savepoint and keeps its result. `Err` means the group's
    /// transaction can no longer be trusted (SQLite rolled it back, or the savepoint could
    /// not be released or rolled back).
    fn run(&self, conn: &Connection) -> rusqlite::Result<()>;

    /// The group failed: a write that had succeeded gets this error instead (a write that
    /// failed on its own keeps its own error: it was not stored either way).
    fn fail(&self, error: &rusqlite::Error);

    /// The group's outcome is final: the caller may take its result.
    fn answer(&self);
}

/// One caller's write and, once its group is finished, its result.
struct Slot<T> {
    op: Mutex<Option<Op<T>>>,
    result: Mutex<Option<Result<T>>>,
    answered: AtomicBool,
}

impl<T: Send> Batched for Slot<T> {
    fn run(&self, conn: &Connection) -> rusqlite::Result<()> {
        let Some(op) = lock(&self.op).take() else {
            return Ok(());
        };
        conn.execute_batch("SAVEPOINT radroute_write")?;
        let result = op(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (e.g. SQLITE_FULL, SQLITE_IOERR).
            *lock(&self.result) = Some(result);
            return Err(rolled_back());
        }
        let end = if result.is_ok() {
            "RELEASE radroute_write"
        } else {
            "ROLLBACK TO radroute_write; RELEASE radroute_write"
        };
        *lock(&self.result) = Some(result);
        conn.execute_batch(end)
    }

    fn fail(&self, error: &rusqlite::Error) {
        let mut result = lock(&self.result);
        if !matches!(*result, Some(Err(_))) {
            *result = Some(Err(group_error(error)));
        }
    }

    fn answer(&self) {
        self.answered.store(true, Ordering::Release);
    }
}

fn rolled_back() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_ABORT),
        Some("SQLite rolled the transaction back".into()),
    )
}

/// The group's error for one of its callers (rusqlite's error is not `Clone`): the SQLite
/// codes are kept, so the caller sees the same kind of failure.
fn group_error(e: &rusqlite::Error) -> QueueError {
    let source = match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    QueueError::Database {
        op: "group commit",
        source,
    }
}

/// Locks, recovering from poisoning: a panicking leader's transaction was rolled back by its
/// drop and the slots it did not answer report it (see [`GroupCommit::run`]).
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! The group itself, made deterministic: the test holds the connection while the writers
    //! queue up behind it, so they are sure to share one transaction when it lets go.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::lock;
    use crate::{
        ForwardQueue, InstanceState, NewInstance, QueueError, RetryPolicy, SqliteQueue, UnixMillis,
    };

    const T0: UnixMillis = UnixMillis(1_795_832_130_000);

    /// One caller's call on the queue, run on its own thread.
    type Write<T> = Box<dyn FnOnce(&SqliteQueue) -> crate::Result<T> + Send>;

    fn inst(id: &str) -> NewInstance {
        NewInstance {
            id: id.to_owned(),
            sop_instance_uid: format!("1.2.3.{id}"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".to_owned(),
            transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
            study_instance_uid: None,
            calling_ae: "MODALITY".to_owned(),
            called_ae: "RADROUTE".to_owned(),
            peer_addr: "10.0.0.7:40000".to_owned(),
            received_at: T0,
            bytes: 1,
        }
    }

    fn open(dir: &std::path::Path) -> Arc<SqliteQueue> {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            max_attempts: 3,
        };
        Arc::new(SqliteQueue::open(&dir.join("queue.sqlite"), policy).unwrap())
    }

    /// Counts the commits of `q`'s connection; `abort` turns each into a rollback (SQLite
    /// then fails the `COMMIT` with SQLITE_CONSTRAINT_COMMITHOOK).
    fn count_commits(q: &SqliteQueue, abort: bool) -> Arc<AtomicUsize> {
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        lock(&q.conn).commit_hook(Some(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            abort
        }));
        n
    }

    /// Runs `writes` on their own threads while the test holds the connection, waits until
    /// all are queued for the group, then lets go; returns their results in order.
    fn in_one_group<T: Send + 'static>(
        q: &Arc<SqliteQueue>,
        writes: Vec<Write<T>>,
    ) -> Vec<crate::Result<T>> {
        let held = lock(&q.conn);
        let n = writes.len();
        let threads: Vec<_> = writes
            .into_iter()
            .map(|w| {
                let q = q.clone();
                std::thread::spawn(move || w(&q))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&q.group.pending).len() < n {
            assert!(Instant::now() < deadline, "writers did not queue up");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    fn add(id: &'static str) -> Write<()> {
        Box::new(move |q| q.add_instance(&inst(id)))
    }

    fn stored(q: &SqliteQueue) -> Vec<String> {
        let mut ids: Vec<String> = q
            .open_instances()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn concurrent_writes_share_one_commit_and_are_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        q.add_instance(&inst("r0")).unwrap();
        let commits = count_commits(&q, false);
        let mut writes = vec![
            add("a1"),
            add("a2"),
            add("a3"),
            add("a4"),
            add("a5"),
            add("a6"),
        ];
        writes.push(Box::new(|q| {
            q.route_instance("r0", Some("CHEST"), None, &["pacs".to_owned()], T0)
        }));
        let results = in_one_group(&q, writes);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "seven writes, one commit"
        );
        drop(q);
        // a new connection on the file sees every write
        let q = open(dir.path());
        assert_eq!(stored(&q), ["a1", "a2", "a3", "a4", "a5", "a6", "r0"]);
        assert_eq!(q.counts().unwrap().jobs.queued, 1);
    }

    #[test]
    fn a_failed_commit_fails_every_write_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        q.add_instance(&inst("r0")).unwrap();
        let commits = count_commits(&q, true);
        let mut writes = vec![add("a1"), add("a2"), add("a3")];
        writes.push(Box::new(|q| {
            q.route_instance("r0", Some("CHEST"), None, &["pacs".to_owned()], T0)
        }));
        let results = in_one_group(&q, writes);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        for r in &results {
            assert!(
                matches!(
                    r,
                    Err(QueueError::Database {
                        op: "group commit",
                        ..
                    })
                ),
                "{r:?}"
            );
        }
        lock(&q.conn).commit_hook(None::<fn() -> bool>);
        drop(q);
        let q = open(dir.path());
        assert_eq!(stored(&q), ["r0"], "nothing of the failed group is stored");
        assert_eq!(
            q.instance("r0").unwrap().unwrap().instance.state,
            InstanceState::Received
        );
        // the queue goes on: the same writes succeed now
        q.add_instance(&inst("a1")).unwrap();
        q.route_instance("r0", None, None, &[], T0).unwrap();
    }

    #[test]
    fn a_failing_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        q.add_instance(&inst("dup")).unwrap();
        let commits = count_commits(&q, false);
        let results = in_one_group(&q, vec![add("a1"), add("dup"), add("a2")]);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        let dup = results.iter().filter(|r| r.is_err()).collect::<Vec<_>>();
        assert!(
            matches!(dup[..], [Err(QueueError::DuplicateInstance { .. })]),
            "{results:?}"
        );
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
        drop(q);
        assert_eq!(stored(&open(dir.path())), ["a1", "a2", "dup"]);
    }

    #[test]
    fn a_lone_write_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path());
        let commits = count_commits(&q, false);
        q.add_instance(&inst("a1")).unwrap();
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        assert!(lock(&q.group.pending).is_empty());
    }
}

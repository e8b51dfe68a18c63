//! The queue's vocabulary: states, records, outcomes and admin views. Backend independent.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time as milliseconds since the Unix epoch (UTC); what the database stores.
/// Time-dependent queue methods take it as an argument so that tests are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current wall-clock time.
    pub fn now() -> UnixMillis {
        UnixMillis::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime` (times before the epoch become negative).
    pub fn from_system_time(t: SystemTime) -> UnixMillis {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixMillis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => UnixMillis(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Converts back to a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let d = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// `self - d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// A string that names no state (from the database or the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant,)+ }

        impl $name {
            /// Every state, in life-cycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name stored in the database and shown by the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState(s.to_owned())),
                }
            }
        }
    };
}

text_enum! {
    /// Where an instance is in the pipeline.
    InstanceState {
        /// Spooled and acknowledged; not yet processed (re-processed after a restart).
        Received = "received",
        /// Processed; its jobs exist (none when no route sent it anywhere). Its files are in
        /// the spool until it is purged.
        Routed = "routed",
        /// Finished and its spool files purged: every job delivered or given up (operator
        /// drop, dead letter past its retention), or routed nowhere. Its rows stay for the
        /// audit trail; its jobs can no longer be retried.
        Done = "done",
    }
}

text_enum! {
    /// Where a job (one instance to one destination) is.
    JobState {
        /// Waiting for `next_attempt_at`.
        Queued = "queued",
        /// Leased by a forward worker.
        InFlight = "in_flight",
        /// The destination answered success (or warning).
        Delivered = "delivered",
        /// Refused permanently or out of attempts; waits for an operator.
        Dead = "dead",
    }
}

/// Identifier of a job (database row id; never reused).
pub type JobId = i64;

/// An instance as recorded by the receive path, before the C-STORE is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    /// The spool's instance id (text form).
    pub id: String,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer syntax the file is stored in.
    pub transfer_syntax: String,
    /// Study Instance UID (0020,000D), when the data set has one.
    pub study_instance_uid: Option<String>,
    /// AE title of the sender.
    pub calling_ae: String,
    /// AE title it called (ours).
    pub called_ae: String,
    /// Sender's socket address.
    pub peer_addr: String,
    /// When the instance was received.
    pub received_at: UnixMillis,
    /// Size of the spooled file.
    pub bytes: u64,
}

/// An instance as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The spool's instance id (text form).
    pub id: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Transfer syntax of the spooled file.
    pub transfer_syntax: String,
    /// Study Instance UID, if any.
    pub study_instance_uid: Option<String>,
    /// AE title of the sender.
    pub calling_ae: String,
    /// AE title it called.
    pub called_ae: String,
    /// Sender's socket address.
    pub peer_addr: String,
    /// When it was received.
    pub received_at: UnixMillis,
    /// Last state change.
    pub updated_at: UnixMillis,
    /// Pipeline state.
    pub state: InstanceState,
    /// Body-part label written by processing, if any.
    pub label: Option<String>,
    /// Why processing left it unlabelled (or routed nowhere), if it did.
    pub processing_note: Option<String>,
    /// Size of the spooled file.
    pub bytes: u64,
}

/// A leased job: everything a forward worker needs to send the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job.
    pub id: JobId,
    /// The instance (spool id) whose processed file is sent.
    pub instance_id: String,
    /// Destination name (as configured).
    pub destination: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID (for presentation-context negotiation).
    pub sop_class_uid: String,
    /// Transfer syntax of the stored file.
    pub transfer_syntax: String,
    /// Study Instance UID, if any (for logs).
    pub study_instance_uid: Option<String>,
    /// Priority from the routing rules: -1 low, 0 medium, 1 high.
    pub priority: i8,
}

/// How one delivery attempt ended, as reported by the forward worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination stored the instance (status 0000 or a warning).
    Delivered {
        /// DICOM status of the C-STORE-RSP.
        status: u16,
    },
    /// A transient failure (network, association rejected, busy, out of resources): retry
    /// after the backoff, or dead letter when the attempts are exhausted.
    Retry {
        /// What went wrong.
        error: String,
        /// DICOM status, when a response was received.
        status: Option<u16>,
    },
    /// A permanent refusal (e.g. SOP class not supported): dead letter now.
    Dead {
        /// What went wrong.
        error: String,
        /// DICOM status, when a response was received.
        status: Option<u16>,
    },
}

/// A job as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// The job.
    pub id: JobId,
    /// Its instance.
    pub instance_id: String,
    /// Destination name.
    pub destination: String,
    /// State.
    pub state: JobState,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due (meaningful while queued).
    pub next_attempt_at: UnixMillis,
    /// Last error, if any attempt failed.
    pub last_error: Option<String>,
    /// Last DICOM status received, if any.
    pub last_status: Option<u16>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// SOP Instance UID of its instance.
    pub sop_instance_uid: String,
    /// Study Instance UID of its instance.
    pub study_instance_uid: Option<String>,
}

/// An instance with its jobs (admin lookups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDetail {
    /// The instance.
    pub instance: InstanceRecord,
    /// Its jobs, by destination.
    pub jobs: Vec<JobView>,
}

/// Which jobs `list_jobs` returns (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs for this destination.
    pub destination: Option<String>,
    /// At most this many rows.
    pub limit: usize,
}

impl Default for JobFilter {
    /// All jobs, at most 100.
    fn default() -> Self {
        JobFilter {
            state: None,
            destination: None,
            limit: 100,
        }
    }
}

/// Number of jobs in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Waiting.
    pub queued: u64,
    /// Leased.
    pub in_flight: u64,
    /// Delivered.
    pub delivered: u64,
    /// Dead letters.
    pub dead: u64,
}

impl JobCounts {
    /// The count of one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::InFlight => self.in_flight,
            JobState::Delivered => self.delivered,
            JobState::Dead => self.dead,
        }
    }

    pub(crate) fn add(&mut self, state: JobState, n: u64) {
        match state {
            JobState::Queued => self.queued += n,
            JobState::InFlight => self.in_flight += n,
            JobState::Delivered => self.delivered += n,
            JobState::Dead => self.dead += n,
        }
    }
}

/// Number of instances in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceCounts {
    /// Awaiting processing.
    pub received: u64,
    /// With jobs.
    pub routed: u64,
    /// Finished.
    pub done: u64,
}

/// What `radroute queue` shows, and the metrics gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instances by state.
    pub instances: InstanceCounts,
    /// Jobs by state, all destinations.
    pub jobs: JobCounts,
    /// Jobs by state for each destination that has jobs.
    pub per_destination: BTreeMap<String, JobCounts>,
}

/// How long spool files are kept once nothing more will be sent ([`crate::ForwardQueue::purgeable`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// After the last job was delivered or dropped by an operator, or after routing when no
    /// route sent the instance anywhere (`[spool] retention_secs`).
    pub finished: Duration,
    /// After a job became a dead letter on its own (refused, or out of attempts), so that an
    /// operator can still retry it (`[spool] dead_letter_retention_secs`).
    pub dead_letters: Duration,
}

/// What start-up recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Jobs that were in flight at the crash and are queued again.
    pub requeued_jobs: u64,
    /// Instances still `received`, to be processed again.
    pub received_instances: u64,
}

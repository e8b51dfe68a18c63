//! radroute's audit trail: who did what to which images, when.
//!
//! Two records, one handle ([`Audit`]):
//! * **Audit messages** in the DICOM audit message format (PS3.15 A.5, the IHE ATNA profile)
//!   for instance transfers (received, sent), start and stop, and operator actions, sent as
//!   RFC 5424 syslog over TCP or TLS (RFC 5425 framing) to a configured audit repository.
//!   Off by default. Sending never slows the image path: a bounded queue, dropped and counted
//!   when full ([`sender`]).
//! * **Operator actions** (retry, drop, rule reload, echo: who, what, when), kept in memory
//!   for the console and `GET /api/v1/audit` ([`operator`]), whether or not a repository is
//!   configured.
//!
//! Modules: [`message`] (the schema as types, and its XML), [`events`] (which codes each event
//! carries, PS3.15 A.5.3), [`syslog`] (RFC 5424 framing), [`sender`] (queue and connection),
//! [`operator`] (the in-process record). The schema the messages are tested against is
//! vendored in `schema/` (see its README).
#![deny(missing_docs)]

pub mod events;
pub mod message;
pub mod operator;
pub mod sender;
pub mod syslog;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::info;

pub use events::{AppIdentity, InstanceRef, Peer};
pub use message::AuditMessage;
pub use operator::{OperatorAction, OperatorActionKind, OperatorLog};
pub use sender::{Sink, SinkSettings, SinkStats};

/// Why the audit sender could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// [`Audit::start`] was called outside a tokio runtime.
    #[error("the audit sender needs a tokio runtime")]
    NoRuntime,
    /// The repository's host is not a valid TLS server name.
    #[error("audit repository host {0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// The audit trail of one radroute process: cheap to share (`Arc<Audit>`).
pub struct Audit {
    app: AppIdentity,
    sink: Option<Sink>,
    operators: OperatorLog,
}

impl Audit {
    /// An audit trail that records operator actions and sends nothing (no repository).
    pub fn disabled(app: AppIdentity) -> Arc<Audit> {
        Arc::new(Audit {
            app,
            sink: None,
            operators: OperatorLog::default(),
        })
    }

    /// An audit trail sending to the repository of `settings` (a task on the current tokio
    /// runtime), or recording only when `settings` is `None`.
    pub fn start(
        app: AppIdentity,
        settings: Option<SinkSettings>,
    ) -> Result<Arc<Audit>, AuditError> {
        let sink = settings.map(Sink::start).transpose()?;
        Ok(Arc::new(Audit {
            app,
            sink,
            operators: OperatorLog::default(),
        }))
    }

    /// Whether audit messages are sent anywhere.
    pub fn is_sending(&self) -> bool {
        self.sink.is_some()
    }

    /// The sender's counters, when a repository is configured.
    pub fn sink_stats(&self) -> Option<&SinkStats> {
        self.sink.as_ref().map(|s| s.stats.as_ref())
    }

    /// Queues one message for the repository (nothing when none is configured).
    pub fn emit(&self, message: &AuditMessage) {
        if let Some(sink) = &self.sink {
            let xml = message.to_xml();
            sink.send(syslog::frame(
                &xml,
                message.event.time,
                &self.app.host,
                "radroute",
                self.app.process_id,
            ));
        }
    }

    /// An instance received from `from` and stored (acknowledged with success).
    pub fn instance_received(&self, from: &Peer, instance: &InstanceRef) {
        if self.sink.is_some() {
            self.emit(&events::instance_received(
                &self.app,
                from,
                instance,
                Utc::now(),
            ));
        }
    }

    /// An instance delivered to `to` (`failure: None`) or moved to the dead letters.
    pub fn instance_forwarded(&self, to: &Peer, instance: &InstanceRef, failure: Option<&str>) {
        if self.sink.is_some() {
            self.emit(&events::instance_forwarded(
                &self.app,
                to,
                instance,
                failure,
                Utc::now(),
            ));
        }
    }

    /// radroute started serving.
    pub fn application_started(&self) {
        self.emit(&events::application_activity(&self.app, true, Utc::now()));
    }

    /// radroute is stopping: sends the stop message and gives the queue `grace` to drain.
    pub async fn application_stopped(&self, grace: Duration) {
        self.emit(&events::application_activity(&self.app, false, Utc::now()));
        if let Some(sink) = &self.sink {
            sink.shutdown(grace).await;
        }
    }

    /// Records an operator's action (kept for the console, logged, and sent as an audit
    /// message when a repository is configured).
    pub fn record(&self, action: OperatorAction) {
        info!(
            who = %action.who,
            from = action.from.as_deref().unwrap_or("-"),
            action = action.kind.as_str(),
            target = %action.target,
            succeeded = action.succeeded,
            detail = %action.detail,
            "operator action"
        );
        self.emit(&events::operator_action(&self.app, &action));
        self.operators.push(action);
    }

    /// The `limit` most recent operator actions, newest first (for the console and the API).
    pub fn operator_actions(&self, limit: usize) -> Vec<OperatorAction> {
        self.operators.recent(limit)
    }
}

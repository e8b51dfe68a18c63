//! The C-STORE SCU: one association per batch, presentation contexts per SOP class, the store
//! loop and C-ECHO.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::{Pdu, PresentationContextResultReason};
use dicom_ul::ClientAssociationOptions;
use radroute_dimse::{
    fragment_data, fragment_message, CEchoRq, CStoreRq, Command, PDataAssembler, Priority, Status,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::destination::Destination;
use crate::outcome::SendOutcome;
use crate::part10::{
    dataset_of, spliced, to_uncompressed, Part10Error, DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
};
use crate::pdata::{write_pdata, DataSet};
use crate::ForwardError;

/// At most this many presentation contexts in one association (PS3.8 allows 128).
const MAX_CONTEXTS: usize = 128;

/// One instance to send: a spooled Part-10 file and what the queue knows about it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The caller's key (the queue's job id), echoed in logs.
    pub key: i64,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Transfer syntax of the data set in `path`.
    pub transfer_syntax: String,
    /// The Part-10 file to send.
    pub path: PathBuf,
    /// The instance's coerced header, stored apart from its pixels: when set, what is sent is
    /// this file's data set followed by `path`'s bytes from Pixel Data on ([`crate::part10::spliced`]).
    pub header: Option<PathBuf>,
    /// C-STORE priority.
    pub priority: Priority,
}

fn is_uncompressed_default(ts: &str) -> bool {
    ts == EXPLICIT_VR_LE || ts == IMPLICIT_VR_LE
}

/// The presentation contexts to propose for a batch: per SOP class, one context per original
/// compressed (or big endian) syntax, and one offering the uncompressed fallbacks.
fn proposed_contexts(batch: &[Outgoing]) -> Vec<(String, Vec<String>)> {
    let mut originals = BTreeSet::new();
    let mut classes = BTreeSet::new();
    for item in batch {
        classes.insert(item.sop_class_uid.clone());
        if !is_uncompressed_default(&item.transfer_syntax)
            && item.transfer_syntax != DEFLATED_EXPLICIT_VR_LE
        {
            originals.insert((item.sop_class_uid.clone(), item.transfer_syntax.clone()));
        }
    }
    let mut out: Vec<(String, Vec<String>)> = originals
        .into_iter()
        .map(|(class, ts)| (class, vec![ts]))
        .collect();
    for class in classes {
        out.push((
            class,
            vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()],
        ));
    }
    out.truncate(MAX_CONTEXTS);
    out
}

/// The byte streams an association can run over: plain TCP or TLS.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

fn options<'a>(
    dest: &'a Destination,
    contexts: &'a [(String, Vec<String>)],
) -> ClientAssociationOptions<'a> {
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(dest.calling_ae_title.as_str())
        .called_ae_title(dest.ae_title.as_str())
        .max_pdu_length(dest.max_pdu)
        .connection_timeout(dest.connect_timeout)
        .read_timeout(dest.io_timeout)
        .write_timeout(dest.io_timeout);
    for (class, syntaxes) in contexts {
        options = options.with_presentation_context(
            class.as_str(),
            syntaxes.iter().map(String::as_str).collect(),
        );
    }
    options
}

/// The association error with its causes: dicom-ul's "could not connect to server" alone does
/// not say whether the name did not resolve, the port refused or nothing answered, which is what
/// an operator acts on (the console tells them apart from this text).
fn association_error(dest: &Destination, e: impl std::error::Error) -> ForwardError {
    let mut reason = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        cause = c.source();
    }
    ForwardError::Association {
        destination: dest.name.clone(),
        address: dest.address.clone(),
        reason,
    }
}

async fn connect_plain(
    dest: &Destination,
    contexts: &[(String, Vec<String>)],
) -> Result<AsyncClientAssociation<TcpStream>, ForwardError> {
    let mut assoc = options(dest, contexts)
        .establish_async(dest.address.as_str())
        .await
        .map_err(|e| association_error(dest, e))?;
    // dicom-ul does not set TCP_NODELAY; without it every exchange can stall on delayed ACKs.
    let _ = dicom_ul::association::AsyncAssociation::inner_stream(&mut assoc).set_nodelay(true);
    Ok(assoc)
}

async fn connect_tls(
    dest: &Destination,
    contexts: &[(String, Vec<String>)],
    tls: &crate::destination::ClientTls,
) -> Result<AsyncClientAssociation<dicom_ul::association::client::AsyncTlsStream>, ForwardError> {
    let mut assoc = options(dest, contexts)
        .tls_config(tls.config.clone())
        .server_name(&tls.server_name)
        .establish_tls_async(dest.address.as_str())
        .await
        .map_err(|e| association_error(dest, e))?;
    let _ = dicom_ul::association::AsyncAssociation::inner_stream(&mut assoc)
        .get_mut()
        .0
        .set_nodelay(true);
    Ok(assoc)
}

/// Checks that a destination answers C-ECHO.
pub async fn echo(dest: &Destination) -> Result<(), ForwardError> {
    let contexts = vec![(
        radroute_dimse::VERIFICATION_SOP_CLASS.to_string(),
        vec![EXPLICIT_VR_LE.to_string(), IMPLICIT_VR_LE.to_string()],
    )];
    match &dest.tls {
        Some(tls) => echo_over(dest, connect_tls(dest, &contexts, tls).await?).await,
        None => echo_over(dest, connect_plain(dest, &contexts).await?).await,
    }
}

async fn echo_over<S: Stream>(
    dest: &Destination,
    mut assoc: AsyncClientAssociation<S>,
) -> Result<(), ForwardError> {
    let broken = |reason: String| ForwardError::Broken {
        destination: dest.name.clone(),
        reason,
    };
    let pc = accepted_context(
        &assoc,
        radroute_dimse::VERIFICATION_SOP_CLASS,
        &[EXPLICIT_VR_LE, IMPLICIT_VR_LE],
    )
    .ok_or_else(|| broken("Verification not accepted".into()))?
    .0;
    let cmd = Command::EchoRq(CEchoRq { message_id: 1 })
        .encode()
        .map_err(|e| broken(e.to_string()))?;
    for pdu in fragment_message(pc, cmd, None, assoc.acceptor_max_pdu_length()) {
        assoc.send(&pdu).await.map_err(|e| broken(e.to_string()))?;
    }
    match receive_response(&mut assoc).await.map_err(broken)? {
        Command::EchoRsp(rsp) if rsp.status == Status::SUCCESS => {}
        other => return Err(broken(format!("unexpected echo response {other:?}"))),
    }
    let _ = assoc.release().await;
    Ok(())
}

fn accepted_context<S>(
    assoc: &AsyncClientAssociation<S>,
    class: &str,
    syntaxes: &[&str],
) -> Option<(u8, String)> {
    // Prefer the syntaxes in the order given.
    for ts in syntaxes {
        let found = assoc.presentation_contexts().iter().find(|pc| {
            pc.reason == PresentationContextResultReason::Acceptance
                && pc.abstract_syntax.trim_end_matches('\0') == class
                && pc.transfer_syntax.trim_end_matches('\0') == *ts
        });
        if let Some(pc) = found {
            return Some((pc.id, ts.to_string()));
        }
    }
    None
}

async fn receive_response<S: Stream>(
    assoc: &mut AsyncClientAssociation<S>,
) -> Result<Command, String> {
    // Responses carry no data set: the command set is capped and length-checked by the
    // assembler, and a destination that sends data bytes is a protocol error, not a buffer.
    let mut assembler = PDataAssembler::with_max_data_len(0);
    loop {
        match assoc.receive().await.map_err(|e| e.to_string())? {
            Pdu::PData { data } => {
                for pdv in data {
                    if let Some(msg) = assembler.push(pdv).map_err(|e| e.to_string())? {
                        return Ok(msg.command);
                    }
                }
            }
            Pdu::AbortRQ { source } => return Err(format!("destination aborted: {source:?}")),
            other => return Err(format!("unexpected PDU {}", other.short_description())),
        }
    }
}

/// The data set to send for one instance in the chosen context, or why it cannot be sent. In
/// its own syntax nothing of the pixels is read here: they go from the spool file to the socket.
async fn payload(item: &Outgoing, target_ts: &str) -> Result<DataSet, SendOutcome> {
    let same_syntax = target_ts == item.transfer_syntax;
    let implicit = target_ts == IMPLICIT_VR_LE;
    let (path, header, ts) = (
        item.path.clone(),
        item.header.clone(),
        item.transfer_syntax.clone(),
    );
    let prepared = tokio::task::spawn_blocking(move || match header {
        Some(header) if same_syntax => spliced(&header, &path, &ts),
        Some(header) => {
            // The header's preamble and meta too: a Part-10 file to transcode.
            let mut whole = spliced(&header, &path, &ts)?;
            whole.head_start = 0;
            let file = whole.into_bytes().map_err(|source| Part10Error::Io {
                path: path.clone(),
                source,
            })?;
            to_uncompressed(&file, implicit).map(|bytes| DataSet::in_memory(bytes, 0))
        }
        None if same_syntax => dataset_of(&path),
        None => {
            let file = std::fs::read(&path).map_err(|source| Part10Error::Io {
                path: path.clone(),
                source,
            })?;
            to_uncompressed(&file, implicit).map(|bytes| DataSet::in_memory(bytes, 0))
        }
    })
    .await
    .map_err(|e| SendOutcome::Retry {
        reason: format!("payload task failed: {e}"),
        status: None,
    })?;
    prepared.map_err(|e| match e {
        // A spool file that is gone will not come back: retrying it until the last attempt only
        // delays the dead letter that tells the operator.
        Part10Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            SendOutcome::Dead {
                reason: format!("spool file missing: {e}"),
                status: None,
            }
        }
        // A file that cannot be read now may be readable later (I/O error, full file table).
        Part10Error::Io { .. } => SendOutcome::Retry {
            reason: e.to_string(),
            status: None,
        },
        other => SendOutcome::Dead {
            reason: format!("{}: {other}", item.path.display()),
            status: None,
        },
    })
}

/// Sends a batch over one association of its own and returns one outcome per item, in order.
///
/// Association failures make every unsent item [`SendOutcome::Retry`]; items already answered
/// keep their outcome. The forward worker keeps associations open across batches with
/// [`Session`] instead.
pub async fn send_batch(dest: &Destination, batch: &[Outgoing]) -> Vec<SendOutcome> {
    match Session::open(dest, batch).await {
        Ok(mut session) => {
            let outcomes = session.send(batch).await;
            session.close().await;
            outcomes
        }
        Err(e) => retry_all(batch, &e.to_string()),
    }
}

/// Every item of `batch` to be retried for `reason`.
pub fn retry_all(batch: &[Outgoing], reason: &str) -> Vec<SendOutcome> {
    batch
        .iter()
        .map(|_| SendOutcome::Retry {
            reason: reason.to_string(),
            status: None,
        })
        .collect()
}

/// The association of a [`Session`], over plain TCP or TLS. One per session: the size of the
/// TLS variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Link {
    Plain(AsyncClientAssociation<TcpStream>),
    Tls(AsyncClientAssociation<dicom_ul::association::client::AsyncTlsStream>),
}

/// An open association to one destination that several batches can use in turn, as long as
/// its presentation contexts fit them ([`Session::covers`]): a stream of instances then pays
/// for one association (TCP and TLS handshakes, negotiation, a forked process on some PACS)
/// instead of one per batch.
pub struct Session {
    dest: Destination,
    link: Option<Link>,
    /// The presentation contexts proposed at negotiation.
    proposed: Vec<(String, Vec<String>)>,
    /// Messages sent so far, for message ids.
    sent: usize,
    /// Why the association broke, once it did.
    broken: Option<String>,
    /// Whether the last [`Session::send`] broke before the destination answered anything.
    broke_unanswered: bool,
}

impl Session {
    /// Opens an association proposing the presentation contexts `batch` needs.
    pub async fn open(dest: &Destination, batch: &[Outgoing]) -> Result<Session, ForwardError> {
        let contexts = proposed_contexts(batch);
        let link = match &dest.tls {
            Some(tls) => Link::Tls(connect_tls(dest, &contexts, tls).await?),
            None => Link::Plain(connect_plain(dest, &contexts).await?),
        };
        Ok(Session {
            dest: dest.clone(),
            link: Some(link),
            proposed: contexts,
            sent: 0,
            broken: None,
            broke_unanswered: false,
        })
    }

    /// The destination this session talks to (as configured when it opened).
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// True while the association can carry more messages.
    pub fn is_usable(&self) -> bool {
        self.link.is_some() && self.broken.is_none()
    }

    /// True when the last [`Session::send`] found the association broken before the
    /// destination answered any of its messages: typically a destination that closed an idle
    /// association. Nothing of that batch reached it; it can go again on a new association.
    pub fn broke_unanswered(&self) -> bool {
        self.broke_unanswered
    }

    /// True when this association was negotiated with every presentation context a new one
    /// would propose for `item`, so `item` travels here exactly as it would on a new
    /// association (an uncompressed fallback is not enough when its original syntax was never
    /// offered).
    pub fn covers(&self, item: &Outgoing) -> bool {
        self.is_usable()
            && proposed_contexts(std::slice::from_ref(item))
                .iter()
                .all(|pc| self.proposed.contains(pc))
    }

    /// Sends `batch` and returns one outcome per item, in order. Once the association breaks,
    /// the rest of the batch is [`SendOutcome::Retry`] and the session is no longer usable.
    pub async fn send(&mut self, batch: &[Outgoing]) -> Vec<SendOutcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        self.broke_unanswered = false;
        let mut answered = false;
        for item in batch {
            if let Some(reason) = &self.broken {
                outcomes.push(SendOutcome::Retry {
                    reason: reason.clone(),
                    status: None,
                });
                continue;
            }
            self.sent += 1;
            let message_id = ((self.sent - 1) % 0xFFFF + 1) as u16;
            let result = match &mut self.link {
                Some(Link::Plain(a)) => send_item(&self.dest, a, message_id, item).await,
                Some(Link::Tls(a)) => send_item(&self.dest, a, message_id, item).await,
                None => Err("association closed".to_string()),
            };
            let outcome = match result {
                Ok(outcome) => {
                    answered = true;
                    outcome
                }
                Err(reason) => {
                    self.broke_unanswered = !answered;
                    self.broken = Some(reason.clone());
                    SendOutcome::Retry {
                        reason,
                        status: None,
                    }
                }
            };
            outcomes.push(outcome);
        }
        let delivered = outcomes
            .iter()
            .filter(|o| matches!(o, SendOutcome::Delivered { .. }))
            .count();
        info!(destination = %self.dest.name, sent = batch.len(), delivered, "batch forwarded");
        outcomes
    }

    /// Releases the association (aborts it if it broke).
    pub async fn close(mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        let release = self.broken.is_none();
        let result = match link {
            Link::Plain(a) if release => a.release().await,
            Link::Tls(a) if release => a.release().await,
            Link::Plain(a) => a.abort().await,
            Link::Tls(a) => a.abort().await,
        };
        if let Err(e) = result {
            debug!(destination = %self.dest.name, error = %e, "release failed");
        }
    }
}

/// The transfer syntaxes `item` may travel in, best first: its own (never deflate: see
/// docs/ARCHITECTURE.md), then uncompressed, explicit VR preferred, implicit VR for
/// destinations that take only the default transfer syntax.
fn wanted_syntaxes(item: &Outgoing) -> Vec<&str> {
    let mut wanted: Vec<&str> = Vec::new();
    if item.transfer_syntax != DEFLATED_EXPLICIT_VR_LE {
        wanted.push(&item.transfer_syntax);
    }
    wanted.push(EXPLICIT_VR_LE);
    wanted.push(IMPLICIT_VR_LE);
    wanted
}

/// Sends one instance: `Ok` with its outcome when the destination answered or the instance
/// cannot go at all; `Err` when the association broke.
async fn send_item<S: Stream + 'static>(
    dest: &Destination,
    assoc: &mut AsyncClientAssociation<S>,
    message_id: u16,
    item: &Outgoing,
) -> Result<SendOutcome, String> {
    let wanted = wanted_syntaxes(item);
    let Some((pc, ts)) = accepted_context(assoc, &item.sop_class_uid, &wanted) else {
        return Ok(SendOutcome::Dead {
            reason: format!(
                "{} accepts neither {} nor an uncompressed syntax for SOP class {}",
                dest.name, item.transfer_syntax, item.sop_class_uid
            ),
            status: None,
        });
    };
    let data = match payload(item, &ts).await {
        Ok(data) => data,
        // Say why it had to be converted: corrupt compressed pixels then end as a dead letter
        // that names the destination that wanted them uncompressed.
        Err(SendOutcome::Dead { reason, status }) if ts != item.transfer_syntax => {
            return Ok(SendOutcome::Dead {
                reason: format!(
                    "{} does not accept {} for SOP class {}: {reason}",
                    dest.name, item.transfer_syntax, item.sop_class_uid
                ),
                status,
            })
        }
        Err(outcome) => return Ok(outcome),
    };
    let peer_max = assoc.acceptor_max_pdu_length();
    let outcome = store_one(assoc, pc, message_id, item, data, peer_max, dest.io_timeout).await?;
    match &outcome {
        SendOutcome::Delivered { status } if *status != Status::SUCCESS => {
            warn!(destination = %dest.name, sop_instance_uid = %item.sop_instance_uid, %status, "delivered with warning")
        }
        SendOutcome::Delivered { .. } => {
            debug!(destination = %dest.name, sop_instance_uid = %item.sop_instance_uid, ts = %ts, "delivered")
        }
        other => {
            warn!(destination = %dest.name, sop_instance_uid = %item.sop_instance_uid, outcome = ?other, "not delivered")
        }
    }
    Ok(outcome)
}

async fn store_one<S: Stream + 'static>(
    assoc: &mut AsyncClientAssociation<S>,
    pc: u8,
    message_id: u16,
    item: &Outgoing,
    data: DataSet,
    peer_max: u32,
    io_timeout: std::time::Duration,
) -> Result<SendOutcome, String> {
    let cmd = Command::StoreRq(CStoreRq {
        message_id,
        affected_sop_class_uid: item.sop_class_uid.clone(),
        affected_sop_instance_uid: item.sop_instance_uid.clone(),
        priority: item.priority,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    })
    .encode()
    .map_err(|e| e.to_string())?;
    fn failed(e: impl std::fmt::Display) -> String {
        format!("send failed: {e}")
    }
    for pdu in fragment_message(pc, cmd, None, peer_max) {
        assoc.send(&pdu).await.map_err(failed)?;
    }
    let stream: &mut S = dicom_ul::association::AsyncAssociation::inner_stream(assoc);
    match (stream as &mut dyn std::any::Any).downcast_mut::<TcpStream>() {
        // Plain TCP with a PDU limit: the spool file goes to the socket in the kernel.
        Some(tcp) if peer_max > 0 => write_pdata(tcp, pc, peer_max, &data, io_timeout)
            .await
            .map_err(failed)?,
        // TLS (bytes must be encrypted in user space), or a peer without a PDU limit.
        _ => {
            let bytes = tokio::task::spawn_blocking(move || data.into_bytes())
                .await
                .map_err(|e| format!("reading the spooled file failed: {e}"))?
                .map_err(|e| format!("cannot read the spooled file: {e}"))?;
            if peer_max == 0 {
                for pdu in fragment_data(pc, &bytes, peer_max) {
                    assoc.send(&pdu).await.map_err(failed)?;
                }
            } else {
                let mut writer = assoc.send_pdata(pc);
                writer.write_all(&bytes).await.map_err(failed)?;
                writer.finish().await.map_err(failed)?;
            }
        }
    }
    match receive_response(assoc).await? {
        Command::StoreRsp(rsp) if rsp.message_id_being_responded_to == message_id => Ok(
            SendOutcome::from_status(rsp.status, rsp.error_comment.as_deref()),
        ),
        other => Err(format!("unexpected response {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(class: &str, ts: &str) -> Outgoing {
        Outgoing {
            key: 0,
            sop_class_uid: class.into(),
            sop_instance_uid: "1".into(),
            transfer_syntax: ts.into(),
            path: PathBuf::new(),
            header: None,
            priority: Priority::Medium,
        }
    }

    /// A refused port and a name that does not resolve read differently in the error, so the
    /// console can tell the operator which one it is.
    #[tokio::test(flavor = "multi_thread")]
    async fn connect_errors_carry_their_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let mut dest = Destination::new("pacs", "PACS", &format!("127.0.0.1:{port}"), "RADROUTE");
        dest.connect_timeout = std::time::Duration::from_secs(3);
        let contexts = vec![(
            "1.2.840.10008.1.1".to_string(),
            vec![EXPLICIT_VR_LE.to_string()],
        )];
        let Err(refused) = connect_plain(&dest, &contexts).await else {
            panic!("a closed port accepted an association");
        };
        assert!(
            refused.to_string().to_ascii_lowercase().contains("refused"),
            "{refused}"
        );
        dest.address = "no-such-host.invalid:104".into();
        let Err(unresolved) = connect_plain(&dest, &contexts).await else {
            panic!("a name that does not resolve accepted an association");
        };
        let text = unresolved.to_string().to_ascii_lowercase();
        assert!(
            text.contains("lookup") || text.contains("resolve") || text.contains("name"),
            "{unresolved}"
        );
    }

    /// A spool file deleted under a queued job is a dead letter at once, not a retry until
    /// the last attempt; any other read error may clear and is retried.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_spool_file_is_dead_and_not_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gone = item("1.2.840.10008.5.1.4.1.1.1", EXPLICIT_VR_LE);
        gone.path = dir.path().join("incoming").join("missing.dcm");
        match payload(&gone, EXPLICIT_VR_LE).await {
            Err(SendOutcome::Dead { reason, .. }) => {
                assert!(reason.contains("spool file missing"), "{reason}")
            }
            Err(other) => panic!("expected a dead letter, got {other:?}"),
            Ok(_) => panic!("a missing file produced a payload"),
        }
        // A directory where the file should be: an I/O error that is not "not found".
        let mut unreadable = item("1.2.840.10008.5.1.4.1.1.1", EXPLICIT_VR_LE);
        unreadable.path = dir.path().to_path_buf();
        assert!(matches!(
            payload(&unreadable, EXPLICIT_VR_LE).await,
            Err(SendOutcome::Retry { .. })
        ));
    }

    #[test]
    fn contexts_offer_original_and_uncompressed() {
        let batch = [
            item("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.1.2.4.70"),
            item("1.2.840.10008.5.1.4.1.1.1", EXPLICIT_VR_LE),
            item("1.2.840.10008.5.1.4.1.1.7", DEFLATED_EXPLICIT_VR_LE),
        ];
        let pcs = proposed_contexts(&batch);
        assert_eq!(pcs.len(), 3);
        assert!(pcs.contains(&(
            "1.2.840.10008.5.1.4.1.1.1".into(),
            vec!["1.2.840.10008.1.2.4.70".into()]
        )));
        assert!(pcs.contains(&(
            "1.2.840.10008.5.1.4.1.1.7".into(),
            vec![EXPLICIT_VR_LE.into(), IMPLICIT_VR_LE.into()]
        )));
    }
}

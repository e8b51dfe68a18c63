//! One negotiated association: a loop of receive → reassemble → dispatch → respond, with the
//! data set being received held within the shared receive memory budget.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValueType, Pdu, PresentationContextNegotiated,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::ServerAssociationOptions;
use radroute_dimse::{
    fragment_message, AssembledMessage, CEchoRsp, CStoreRsp, Command, PDataAssembler,
    ReassemblyError, Status, MAX_COMMAND_SET_LEN,
};
use tracing::{debug, info, warn};

use crate::access::AccessPolicy;
use crate::admission::Ticket;
use crate::budget::MemoryBudget;
use crate::negotiate::Context;
use crate::options::ScpOptions;
use crate::stream::{discard_sink, DataSetStream};
use crate::{IncomingInstance, InstanceStart, StoreHandler, Streamed};

/// Who is on the other end of an association; attached to every instance it carries.
#[derive(Debug, Clone)]
pub struct AssociationInfo {
    /// Process-unique association number, for logs.
    pub id: u64,
    /// Calling AE title (the modality).
    pub calling_ae: String,
    /// Called AE title (what the modality thinks we are).
    pub called_ae: String,
    /// Peer socket address.
    pub peer: SocketAddr,
}

/// dicom-ul access-control adapter: the allow-list needs the peer address, which dicom-ul's
/// trait does not pass, so one adapter is built per connection.
pub(crate) struct PeerAccess {
    policy: AccessPolicy,
    peer: SocketAddr,
    require_called_ae_title: bool,
}

impl AccessControl for PeerAccess {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if !self.policy.permits(calling_ae_title, self.peer.ip()) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if self.require_called_ae_title && called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        Ok(())
    }
}

/// dicom-ul's acceptor options for one connection from `peer`.
pub(crate) fn acceptor_options(
    options: &ScpOptions,
    peer: SocketAddr,
) -> ServerAssociationOptions<'static, PeerAccess, dicom_ul::association::server::DefaultNegotiation>
{
    let mut scp = ServerAssociationOptions::new()
        .ae_access_control(PeerAccess {
            policy: options.access.clone(),
            peer,
            require_called_ae_title: options.require_called_ae_title,
        })
        .ae_title(options.ae_title.clone())
        .max_pdu_length(options.max_pdu)
        .read_timeout(options.idle_timeout)
        .with_abstract_syntax(radroute_dimse::VERIFICATION_SOP_CLASS);
    for uid in &options.sop_classes {
        scp = scp.with_abstract_syntax(uid.clone());
    }
    for uid in &options.transfer_syntaxes {
        scp = scp.with_transfer_syntax(uid.clone());
    }
    scp
}

/// Logs and counts a negotiation that ended without an association.
pub(crate) fn negotiation_failed(id: u64, peer: SocketAddr, error: &dicom_ul::association::Error) {
    metrics::counter!("radroute_associations_total", "outcome" => "rejected").increment(1);
    warn!(assoc = id, %peer, %error, "association refused or failed during negotiation");
}

/// Serves one negotiated association, plain TCP or TLS, to its end; `ticket` holds its slots.
pub(crate) async fn serve_association<S, H>(
    ctx: Context<H>,
    mut assoc: dicom_ul::association::AsyncServerAssociation<S>,
    ticket: Ticket,
    started: Instant,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    H: StoreHandler,
{
    let Context {
        id,
        peer,
        options,
        handler,
        mut stop,
        budget,
        ..
    } = ctx;
    let _ticket = ticket;
    metrics::counter!("radroute_associations_total", "outcome" => "accepted").increment(1);
    let active = metrics::gauge!("radroute_associations_active");
    active.increment(1.0);
    let info = Arc::new(AssociationInfo {
        id,
        calling_ae: dicom_ul::association::Association::peer_ae_title(&assoc)
            .trim()
            .to_string(),
        called_ae: assoc.called_ae_title().trim().to_string(),
        peer,
    });
    let accepted: Vec<_> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .cloned()
        .collect();
    info!(
        assoc = id,
        calling_ae = %info.calling_ae,
        called_ae = %info.called_ae,
        %peer,
        contexts = accepted.len(),
        "association accepted"
    );
    let peer_max_pdu = assoc.requestor_max_pdu_length();
    let mut assembler = PDataAssembler::with_max_data_len(
        options.max_instance_bytes.min(options.receive_memory_bytes),
    );
    // Memory of the data set being received; given back once the handler has returned.
    let mut reservation = budget.reservation();
    let memory_wait = options.idle_timeout;
    // Write-behind of the data set being received (see crate::stream): the command's bytes,
    // decoded here too since the assembler keeps its command until the data set is complete,
    // and the C-STORE whose data set comes next.
    let mut command_bytes: Vec<u8> = Vec::new();
    let mut next_store: Option<(u8, String, String)> = None;
    let mut stream: Option<DataSetStream<H::Sink>> = None;
    let mut stored = 0u64;
    let mut failed = 0u64;
    let end: &str = loop {
        let pdu = if *stop.borrow() && !assembler.is_mid_message() {
            break "node shutting down";
        } else if assembler.is_mid_message() {
            assoc.receive().await
        } else {
            tokio::select! {
                pdu = assoc.receive() => pdu,
                _ = stop.changed() => continue,
            }
        };
        let pdu = match pdu {
            Ok(pdu) => pdu,
            Err(e) => {
                warn!(assoc = id, error = %e, "receive failed");
                break "receive failed";
            }
        };
        match pdu {
            Pdu::PData { data } => {
                let mut broken = None;
                for mut pdv in data {
                    // Reserve what the data set buffer is about to take before it grows: past
                    // the budget, stop reading (the sender waits on TCP) for a bounded time.
                    let reserved = match assembler.capacity_after(&pdv) {
                        Ok(want) => reservation.cover(want, memory_wait).await.map_err(|e| {
                            metrics::counter!("radroute_associations_total", "outcome" => "aborted_memory").increment(1);
                            warn!(assoc = id, %peer, error = %e, bytes = want, "no receive memory for the data set: aborting association");
                            "receive memory exhausted"
                        }),
                        Err(e) => Err(reassembly_failed(id, peer, &e)),
                    };
                    if let Err(reason) = reserved {
                        broken = Some(reason);
                        break;
                    }
                    if pdv.value_type == PDataValueType::Command {
                        if command_bytes.len() + pdv.data.len() <= MAX_COMMAND_SET_LEN {
                            command_bytes.extend_from_slice(&pdv.data);
                        }
                        if pdv.is_last {
                            next_store = match Command::decode(&command_bytes) {
                                Ok(Command::StoreRq(rq)) => Some((
                                    pdv.presentation_context_id,
                                    rq.affected_sop_class_uid,
                                    rq.affected_sop_instance_uid,
                                )),
                                _ => None,
                            };
                            command_bytes.clear();
                        }
                    } else {
                        if let Some((pc, class, instance)) = next_store.take() {
                            // A data set of one PDV is complete already: nothing to overlap.
                            if pc == pdv.presentation_context_id && !pdv.is_last {
                                stream = begin_stream(
                                    handler.as_ref(),
                                    &budget,
                                    (options.max_pdu, options.idle_timeout),
                                    &accepted,
                                    &info,
                                    (pc, &class, &instance),
                                );
                            }
                        }
                    }
                    // While a data set is written behind, the assembler copies the PDV's bytes
                    // and the stream takes its buffer as it is: one copy, not two.
                    let assembled = match stream.as_mut() {
                        Some(stream) if pdv.value_type == PDataValueType::Data => {
                            let assembled = assembler.push_copied(&pdv);
                            if assembled.is_ok() {
                                stream.push(std::mem::take(&mut pdv.data)).await;
                            }
                            assembled
                        }
                        _ => assembler.push(pdv),
                    };
                    match assembled {
                        Ok(None) => {}
                        Ok(Some(msg)) => {
                            let streamed = match stream.take() {
                                Some(stream) => Some(stream.finish().await),
                                None => None,
                            };
                            let reply =
                                dispatch(msg, streamed, &info, &accepted, handler.as_ref()).await;
                            // The handler has returned: the buffer is its business now.
                            reservation.release();
                            match reply {
                                Dispatch::Respond {
                                    pc,
                                    command,
                                    stored: ok,
                                } => {
                                    if let Some(ok) = ok {
                                        if ok {
                                            stored += 1
                                        } else {
                                            failed += 1
                                        }
                                    }
                                    if let Err(e) =
                                        send(&mut assoc, pc, &command, peer_max_pdu).await
                                    {
                                        warn!(assoc = id, error = %e, "sending response failed");
                                        broken = Some("send failed");
                                        break;
                                    }
                                }
                                Dispatch::Abort(reason) => {
                                    broken = Some(reason);
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            broken = Some(reassembly_failed(id, peer, &e));
                            break;
                        }
                    }
                }
                if let Some(reason) = broken {
                    break reason;
                }
            }
            Pdu::ReleaseRQ => {
                if let Err(e) = assoc.send(&Pdu::ReleaseRP).await {
                    debug!(assoc = id, error = %e, "sending A-RELEASE-RP failed");
                }
                break "released";
            }
            Pdu::AbortRQ { .. } => break "aborted by peer",
            other => {
                warn!(assoc = id, pdu = %other.short_description(), "unexpected PDU: aborting");
                break "unexpected PDU";
            }
        }
    };
    if let Some(stream) = stream.take() {
        // The data set never completed: what was written of it goes.
        stream.discard();
    }
    if end != "released" && end != "aborted by peer" {
        let _ = assoc.abort().await;
    }
    active.decrement(1.0);
    info!(
        assoc = id,
        calling_ae = %info.calling_ae,
        stored,
        failed,
        ms = started.elapsed().as_millis() as u64,
        end,
        "association closed"
    );
}

/// Logs and counts PDVs that do not form a valid message; returns the association's end reason.
fn reassembly_failed(id: u64, peer: SocketAddr, error: &ReassemblyError) -> &'static str {
    let (outcome, end) = match error {
        ReassemblyError::DataSetTooLarge { .. } => ("aborted_too_large", "data set too large"),
        _ => ("aborted_protocol_error", "protocol error"),
    };
    metrics::counter!("radroute_associations_total", "outcome" => outcome).increment(1);
    warn!(assoc = id, %peer, %error, "{end}: aborting association (A-ABORT)");
    end
}

/// Starts the write-behind of the C-STORE `(pc, SOP class, SOP instance)` whose data set is
/// arriving, if the handler wants it and the receive budget has room for its buffers right now.
fn begin_stream<H: StoreHandler>(
    handler: &H,
    budget: &Arc<MemoryBudget>,
    (max_pdu, stall_limit): (u32, std::time::Duration),
    accepted: &[PresentationContextNegotiated],
    info: &Arc<AssociationInfo>,
    (pc, sop_class_uid, sop_instance_uid): (u8, &str, &str),
) -> Option<DataSetStream<H::Sink>> {
    let context = accepted.iter().find(|c| c.id == pc)?;
    // max_pdu 0 (unlimited) leaves PDVs unbounded: no reservation can cover them.
    let max_pdv = if max_pdu == 0 {
        usize::MAX / 4
    } else {
        max_pdu as usize
    };
    let mut memory = budget.reservation();
    if !memory.try_cover(DataSetStream::<H::Sink>::memory(max_pdv)) {
        metrics::counter!("radroute_receive_stream_skipped_total", "reason" => "memory")
            .increment(1);
        return None;
    }
    let sink = handler.begin(&InstanceStart {
        association: info,
        sop_class_uid,
        sop_instance_uid,
        transfer_syntax: context.transfer_syntax.trim_end_matches('\0'),
    })?;
    Some(DataSetStream::new(sink, memory, stall_limit))
}

enum Dispatch {
    Respond {
        pc: u8,
        command: Command,
        stored: Option<bool>,
    },
    Abort(&'static str),
}

async fn dispatch<H: StoreHandler>(
    msg: AssembledMessage,
    streamed: Option<Streamed<H::Sink>>,
    info: &Arc<AssociationInfo>,
    accepted: &[PresentationContextNegotiated],
    handler: &H,
) -> Dispatch {
    let pc_id = msg.presentation_context_id;
    match msg.command {
        Command::EchoRq(rq) => {
            debug!(assoc = info.id, "C-ECHO");
            Dispatch::Respond {
                pc: pc_id,
                command: Command::EchoRsp(CEchoRsp {
                    message_id_being_responded_to: rq.message_id,
                    status: Status::SUCCESS,
                }),
                stored: None,
            }
        }
        Command::StoreRq(rq) => {
            let started = Instant::now();
            let data = msg.data.unwrap_or_default();
            let bytes = data.len();
            let result = match accepted.iter().find(|pc| pc.id == pc_id) {
                None => {
                    discard_sink(streamed.and_then(Result::ok));
                    crate::StoreResult::failure(
                        Status::SOP_CLASS_NOT_SUPPORTED,
                        "presentation context not accepted",
                    )
                }
                Some(pc) => {
                    handler
                        .store(
                            IncomingInstance {
                                association: info.clone(),
                                sop_class_uid: rq.affected_sop_class_uid.clone(),
                                sop_instance_uid: rq.affected_sop_instance_uid.clone(),
                                transfer_syntax: pc
                                    .transfer_syntax
                                    .trim_end_matches('\0')
                                    .to_string(),
                                data,
                            },
                            streamed,
                        )
                        .await
                }
            };
            let ok = result.status.is_stored();
            let outcome = if ok { "stored" } else { "refused" };
            metrics::counter!("radroute_instances_received_total", "outcome" => outcome)
                .increment(1);
            info!(
                assoc = info.id,
                calling_ae = %info.calling_ae,
                sop_instance_uid = %rq.affected_sop_instance_uid,
                bytes,
                status = %result.status,
                comment = result.comment.as_deref().unwrap_or(""),
                ms = started.elapsed().as_millis() as u64,
                "C-STORE {outcome}"
            );
            Dispatch::Respond {
                pc: pc_id,
                command: Command::StoreRsp(CStoreRsp {
                    message_id_being_responded_to: rq.message_id,
                    affected_sop_class_uid: rq.affected_sop_class_uid,
                    affected_sop_instance_uid: rq.affected_sop_instance_uid,
                    status: result.status,
                    error_comment: result.comment,
                }),
                stored: Some(ok),
            }
        }
        Command::EchoRsp(_) | Command::StoreRsp(_) => {
            warn!(assoc = info.id, "received a response on an SCP association");
            Dispatch::Abort("unexpected response message")
        }
    }
}

async fn send<S>(
    assoc: &mut dicom_ul::association::AsyncServerAssociation<S>,
    pc: u8,
    command: &Command,
    peer_max_pdu: u32,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let bytes = command.encode().map_err(|e| e.to_string())?;
    for pdu in fragment_message(pc, bytes, None, peer_max_pdu) {
        assoc.send(&pdu).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

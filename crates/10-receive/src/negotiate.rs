//! From an accepted connection to an admitted association, within the PS3.8 ARTIM timer.
//!
//! Everything before the association exists runs under one deadline (`artim_timeout`): the TLS
//! handshake, the wait for the A-ASSOCIATE-RQ and dicom-ul's negotiation. A connection that has
//! not finished by then is closed. Slots are taken only once the request is here:
//! - plain TCP: the A-ASSOCIATE-RQ is peeked (left for dicom-ul) and the calling AE's slots are
//!   taken before negotiation; over a limit the peer gets a transient A-ASSOCIATE-RJ, as PS3.8
//!   intends for "local limit exceeded".
//! - TLS: the request is inside the encrypted stream, which dicom-ul handshakes and reads itself
//!   (its API takes the TCP stream, not an established TLS one). The slots are taken right after
//!   negotiation with the negotiated calling AE, and an association over a limit is aborted
//!   (A-ABORT) at once. dicom-ul's own refusal hook would send a *permanent* rejection, which
//!   tells a modality not to retry: wrong for a limit that is only momentary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::timeout_at;
use tracing::{debug, warn};

use crate::admission::{Admission, Refusal};
use crate::association::{acceptor_options, negotiation_failed, serve_association};
use crate::budget::MemoryBudget;
use crate::options::ScpOptions;
use crate::reject::{peek_associate_rq, reject_over_limit, Peeked};
use crate::StoreHandler;

/// What one connection's task needs.
pub(crate) struct Context<H> {
    /// Process-unique association number, for logs.
    pub id: u64,
    /// Peer socket address.
    pub peer: SocketAddr,
    /// Options current when the connection was accepted.
    pub options: Arc<ScpOptions>,
    /// Receives the instances.
    pub handler: Arc<H>,
    /// Turns true when the node shuts down.
    pub stop: watch::Receiver<bool>,
    /// Association slots.
    pub admission: Arc<Admission>,
    /// Memory for data sets being received.
    pub budget: Arc<MemoryBudget>,
}

/// Negotiates within ARTIM, admits, then serves the association to its end. `negotiating` is
/// this connection's place in the negotiating pool, given back once negotiation is over.
pub(crate) async fn run_connection<H: StoreHandler>(
    ctx: Context<H>,
    socket: TcpStream,
    negotiating: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + ctx.options.artim_timeout;
    let scp = acceptor_options(&ctx.options, ctx.peer);
    let per_ae = ctx.options.max_associations_per_ae;
    match ctx.options.tls.clone() {
        None => {
            let ticket = match timeout_at(deadline, peek_associate_rq(&socket)).await {
                Err(_) => return artim_expired(&ctx, "waiting for the A-ASSOCIATE-RQ"),
                Ok(Err(e)) => {
                    debug!(assoc = ctx.id, peer = %ctx.peer, error = %e, "connection lost before negotiation");
                    return;
                }
                Ok(Ok(Peeked::Other)) => None,
                Ok(Ok(Peeked::Oversized(len))) => {
                    metrics::counter!("radroute_associations_total", "outcome" => "aborted_protocol_error").increment(1);
                    warn!(assoc = ctx.id, peer = %ctx.peer, len, "A-ASSOCIATE-RQ declares more than 64 KiB: connection closed");
                    return;
                }
                Ok(Ok(Peeked::AssociateRq { calling_ae })) => {
                    match ctx.admission.try_admit(&calling_ae, per_ae) {
                        Ok(ticket) => Some(ticket),
                        Err(refusal) => {
                            refused(&ctx, &calling_ae, &refusal, "A-ASSOCIATE-RJ (transient)");
                            let left =
                                deadline.saturating_duration_since(tokio::time::Instant::now());
                            if let Err(e) = reject_over_limit(socket, left).await {
                                debug!(assoc = ctx.id, error = %e, "rejecting an over-limit association failed");
                            }
                            return;
                        }
                    }
                }
            };
            let assoc = match timeout_at(deadline, scp.establish_async(socket)).await {
                Err(_) => return artim_expired(&ctx, "negotiating"),
                Ok(Err(e)) => return negotiation_failed(ctx.id, ctx.peer, &e),
                Ok(Ok(assoc)) => assoc,
            };
            drop(negotiating);
            match ticket {
                Some(ticket) => serve_association(ctx, assoc, ticket, started).await,
                None => {
                    // dicom-ul accepts nothing but an A-ASSOCIATE-RQ, which the peek admitted.
                    warn!(assoc = ctx.id, peer = %ctx.peer, "association without an admitted request: aborting");
                    let _ = assoc.abort().await;
                }
            }
        }
        Some(tls) => {
            let scp = scp.tls_config(tls);
            let assoc = match timeout_at(deadline, scp.establish_tls_async(socket)).await {
                Err(_) => return artim_expired(&ctx, "in the TLS handshake or negotiating"),
                Ok(Err(e)) => return negotiation_failed(ctx.id, ctx.peer, &e),
                Ok(Ok(assoc)) => assoc,
            };
            drop(negotiating);
            let calling_ae = dicom_ul::association::Association::peer_ae_title(&assoc)
                .trim()
                .to_string();
            match ctx.admission.try_admit(&calling_ae, per_ae) {
                Ok(ticket) => serve_association(ctx, assoc, ticket, started).await,
                Err(refusal) => {
                    refused(&ctx, &calling_ae, &refusal, "A-ABORT (TLS)");
                    let _ = assoc.abort().await;
                }
            }
        }
    }
}

fn artim_expired<H>(ctx: &Context<H>, during: &str) {
    metrics::counter!("radroute_associations_total", "outcome" => "artim_expired").increment(1);
    warn!(
        assoc = ctx.id,
        peer = %ctx.peer,
        artim_secs = ctx.options.artim_timeout.as_secs_f64(),
        "ARTIM timer expired {during}: connection closed"
    );
}

fn refused<H>(ctx: &Context<H>, calling_ae: &str, refusal: &Refusal, answer: &str) {
    metrics::counter!("radroute_associations_total", "outcome" => refusal.outcome()).increment(1);
    warn!(assoc = ctx.id, peer = %ctx.peer, calling_ae, %refusal, "{answer}");
}

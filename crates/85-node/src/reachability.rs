//! Is each destination reachable? Probed once at start-up (does its name resolve, does it
//! answer C-ECHO) so that placeholders and typos are named in a warning before the first image
//! waits for them, then kept current by the forward workers: `radroute_destination_reachable
//! {destination}` is 1 after a successful association or delivery, 0 after a failed one.
//!
//! The probe runs beside the node and never delays start-up or the images.

use std::time::Duration;

use radroute_forward::Destination;
use tracing::{info, warn};

/// `radroute_destination_reachable{destination}`: 1 reachable, 0 not (last probe or send).
pub const DESTINATION_REACHABLE: &str = "radroute_destination_reachable";

/// Records what was just learnt about `destination`.
pub fn mark(destination: &str, reachable: bool) {
    metrics::gauge!(DESTINATION_REACHABLE, "destination" => destination.to_string())
        .set(if reachable { 1.0 } else { 0.0 });
}

/// Why a destination is unreachable, told apart for the operator (also the console's
/// "C-ECHO now").
pub async fn probe(dest: &Destination) -> Result<(), String> {
    let limit = dest.connect_timeout.max(Duration::from_secs(1));
    match tokio::time::timeout(limit, tokio::net::lookup_host(dest.address.as_str())).await {
        Err(_) => return Err(format!("name lookup of {} timed out", dest.address)),
        Ok(Err(e)) => return Err(format!("{} does not resolve: {e}", dest.address)),
        Ok(Ok(addrs)) => {
            if addrs.count() == 0 {
                return Err(format!("{} resolves to no address", dest.address));
            }
        }
    }
    let limit = dest.connect_timeout + dest.io_timeout;
    match tokio::time::timeout(limit, radroute_forward::echo(dest)).await {
        Err(_) => Err(format!("no C-ECHO answer within {}s", limit.as_secs())),
        Ok(Err(e)) => Err(format!("C-ECHO failed: {e}")),
        Ok(Ok(())) => Ok(()),
    }
}

/// Probes every destination (concurrently) and logs one line each: a warning naming the
/// unreachable ones and why.
pub async fn probe_all(destinations: Vec<Destination>) {
    let probes = destinations.into_iter().map(|dest| async move {
        match probe(&dest).await {
            Ok(()) => {
                mark(&dest.name, true);
                info!(destination = %dest.name, address = %dest.address, "destination answers C-ECHO");
            }
            Err(reason) => {
                mark(&dest.name, false);
                warn!(
                    destination = %dest.name,
                    ae_title = %dest.ae_title,
                    address = %dest.address,
                    reason = %reason,
                    "destination unreachable at start-up: its jobs will wait and retry (a placeholder \
                     address in the configuration?)"
                );
            }
        }
    });
    let handles: Vec<_> = probes.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

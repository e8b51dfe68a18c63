//! `radroute serve`: wires the node (radroute-node), the admin HTTP surface (radroute-admin)
//! and the process signals on one multi-thread tokio runtime. SIGHUP re-reads the file through
//! radroute-config and hands the new configuration to the node, which applies it through the
//! same path as start-up; SIGINT and SIGTERM stop it.

use std::path::PathBuf;

use radroute_config::Config;
use radroute_node::{Node, NodeError};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Runs the node until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("radroute")
        .build()
        .map_err(NodeError::Runtime)?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<(), NodeError> {
    let admin = cfg.admin.clone();
    let source = cfg.source.clone();
    let mut node = Node::open(cfg).await?;
    // Admin HTTP first, so /healthz answers while the rest starts.
    radroute_admin::spawn(&mut node, &admin).await?;
    let (reload_tx, reloads) = mpsc::channel(1);
    let sighup = tokio::spawn(reload_on_sighup(source, reload_tx));
    let outcome = node.run(reloads, shutdown_signal()).await;
    sighup.abort();
    outcome
}

/// Reads the configuration file again on each SIGHUP and sends it to the node. A file with
/// errors is refused with a log line and the running configuration stays.
async fn reload_on_sighup(path: PathBuf, node: mpsc::Sender<Config>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot install the SIGHUP handler: configuration reload disabled");
            return;
        };
        while hup.recv().await.is_some() {
            info!(file = %path.display(), "SIGHUP: reloading configuration");
            match radroute_config::load(Some(&path)) {
                Ok(cfg) => {
                    if node.send(cfg).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "configuration reload refused; keeping the running configuration");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, node);
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    info!("shutdown requested");
}

//! Shared set-up of the cluster tests (issue 13): PostgreSQL 15 from radroute-testkit, radroute
//! nodes with `[cluster]` on one database, HAProxy in front, a storescp PACS that logs every
//! C-STORE it receives (duplicates counted from its log).

use std::path::Path;
use std::thread;

use radroute_e2e::dcmtk::{storescu, StoreRun};
use radroute_e2e::haproxy::{Backend, HaProxy};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;

/// The `[cluster]` section of node `node_id` on `url`: takeover after 5 s, heartbeats every
/// second, so the tests stay fast.
pub fn cluster_toml(url: &str, node_id: &str) -> String {
    format!(
        "\n[cluster]\npostgres = {url:?}\nnode_id = {node_id:?}\ntakeover_after_secs = 5\nheartbeat_secs = 1\n"
    )
}

/// Starts node `node_id` in `dir` (its own spool) on database `url`, forwarding to `pacs`.
pub fn start_node(dir: &Path, url: &str, node_id: &str, pacs_port: u16) -> Radroute {
    std::fs::create_dir_all(dir).expect("node dir");
    let mut config = Config::default().destination("pacs", "PACS", pacs_port);
    config.extra = cluster_toml(url, node_id);
    Radroute::start(dir, config)
}

/// HAProxy in front of `nodes`.
pub fn balancer(dir: &Path, nodes: &[&Radroute]) -> HaProxy {
    let backends: Vec<Backend> = nodes
        .iter()
        .map(|n| Backend {
            dicom_port: n.dicom_port,
            admin_port: n.config.admin_port,
        })
        .collect();
    HaProxy::start(dir, &backends)
}

/// A PACS that logs each C-STORE request (`-v`), so duplicates can be counted.
pub fn pacs(dir: &Path, port: u16) -> StoreScp {
    StoreScp::start_with_args(dir, "PACS", port, &["+xa", "-v"])
}

/// C-STORE requests the PACS received (duplicates included).
pub fn stores_received(pacs: &StoreScp) -> usize {
    pacs.log().matches("Received Store Request").count()
}

/// Sends `files` through `port` with `senders` parallel storescu runs (one association each).
pub fn send_parallel(port: u16, files: &[std::path::PathBuf], senders: usize) -> Vec<StoreRun> {
    let chunks: Vec<Vec<std::path::PathBuf>> = (0..senders)
        .map(|i| files.iter().skip(i).step_by(senders).cloned().collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| thread::spawn(move || storescu("RADROUTE", port, &[], &chunk)))
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("sender thread"))
        .collect()
}

/// `radroute_instances_received_total` of a node (0 when absent).
pub fn received_by(node: &Radroute) -> f64 {
    radroute_e2e::radroute::metric(&node.metrics(), "radroute_instances_received_total", &[])
        .unwrap_or(0.0)
}

/// Sends `files` in associations of `per_association` through `port` from a thread, retrying
/// every failed or unanswered store (as a modality does) until all are acknowledged or
/// `deadline` passes. `acked` counts acknowledged instances as they come; `refusals` collects
/// the failure texts seen.
pub struct RetryingSender {
    /// Instances acknowledged so far.
    pub acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: thread::JoinHandle<(BTreeSet<std::path::PathBuf>, Vec<String>)>,
}

use std::collections::BTreeSet;

impl RetryingSender {
    /// Starts sending.
    pub fn start(
        port: u16,
        files: Vec<std::path::PathBuf>,
        per_association: usize,
        deadline: std::time::Duration,
    ) -> RetryingSender {
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = acked.clone();
        let handle = thread::spawn(move || {
            let until = std::time::Instant::now() + deadline;
            let mut done: BTreeSet<std::path::PathBuf> = BTreeSet::new();
            let mut refusals = Vec::new();
            while done.len() < files.len() && std::time::Instant::now() < until {
                let pending: Vec<_> = files
                    .iter()
                    .filter(|f| !done.contains(*f))
                    .take(per_association)
                    .cloned()
                    .collect();
                let run = storescu("RADROUTE", port, &[], &pending);
                for (file, response) in &run.responses {
                    match response.as_deref() {
                        Some("Success") => {
                            if done.insert(file.clone()) {
                                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                        }
                        Some(other) => refusals.push(other.to_string()),
                        None => refusals.push("no response".into()),
                    }
                }
                if run.succeeded().is_empty() {
                    thread::sleep(std::time::Duration::from_millis(300));
                }
            }
            (done, refusals)
        });
        RetryingSender { acked, handle }
    }

    /// Waits for the sender to finish: the acknowledged files and the refusals seen.
    pub fn finish(self) -> (BTreeSet<std::path::PathBuf>, Vec<String>) {
        self.handle.join().expect("sender thread")
    }
}

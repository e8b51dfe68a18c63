//! dcmtk storescp as a destination sink: accepts every transfer syntax (`+xa`) and writes
//! `<modality>.<SOPInstanceUID>` files into its folder.
//!
//! Started without `--fork` (unless the arguments add it), it serves one association at a time,
//! like many small PACS and workstations: a second association waits unanswered in its listen
//! backlog until the first is released (tests/tests/e2e/forward_single_association.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::is_listening;
use crate::process::Daemon;

/// A running storescp.
pub struct StoreScp {
    /// AE title it answers as.
    pub ae_title: String,
    /// Loopback port.
    pub port: u16,
    /// Where received files go.
    pub dir: PathBuf,
    daemon: Daemon,
}

impl StoreScp {
    /// Starts storescp on `port` with files under `dir` (created) and waits for the port.
    pub fn start(dir: &Path, ae_title: &str, port: u16) -> StoreScp {
        Self::start_with_args(dir, ae_title, port, &["+xa"])
    }

    /// Like [`StoreScp::start`] with other options than `+xa` (e.g. `-d` to log the DIMSE
    /// commands, `+tls …`, or a restricted set of syntaxes).
    pub fn start_with_args(dir: &Path, ae_title: &str, port: u16, args: &[&str]) -> StoreScp {
        std::fs::create_dir_all(dir).expect("create storescp dir");
        let mut cmd = Command::new(crate::dcmtk::tool("storescp"));
        cmd.env("TCP_NODELAY", "1")
            .args(["-aet", ae_title])
            .args(args)
            .arg("-od")
            .arg(dir)
            .arg(port.to_string());
        let log = dir.with_extension("log");
        let mut daemon = Daemon::spawn("storescp", cmd, &log);
        crate::wait_for(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if let Some(st) = daemon.try_exited() {
                    panic!("storescp exited: {st}\n{}", daemon.log_tail(20));
                }
                is_listening(port).then_some(())
            },
            || {
                format!(
                    "storescp not listening on {port}: {}",
                    crate::file_tail(&log, 20)
                )
            },
        );
        StoreScp {
            ae_title: ae_title.into(),
            port,
            dir: dir.to_path_buf(),
            daemon,
        }
    }

    /// SOP Instance UIDs of the files received so far (from the file names).
    pub fn received(&self) -> BTreeSet<String> {
        received_in(&self.dir)
    }

    /// The received file for `sop_instance_uid`, if any.
    pub fn file_for(&self, sop_instance_uid: &str) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name.split_once('.').map(|(_, uid)| uid) == Some(sop_instance_uid)).then(|| e.path())
        })
    }

    /// Its log tail.
    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        crate::strip_ansi(&std::fs::read_to_string(&self.daemon.log).unwrap_or_default())
    }

    /// How many associations it accepted that carried a C-STORE, from its log: tests of
    /// association reuse count them (radroute's start-up reachability probe, a C-ECHO, opens
    /// one of its own, not counted). Needs storescp started verbose (`-v`).
    pub fn store_associations(&self) -> usize {
        self.log()
            .split("Association Acknowledged")
            .skip(1)
            .filter(|association| association.contains("Received Store Request"))
            .count()
    }
}

/// SOP Instance UIDs of storescp's files in `dir` (`<modality>.<uid>`; temp files skipped).
pub fn received_in(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            // Modality prefix, then the UID (not always numeric: some samples carry invalid UIDs).
            let (modality, uid) = name.split_once('.')?;
            (!modality.is_empty()
                && modality.chars().all(|c| c.is_ascii_uppercase())
                && !uid.is_empty()
                && !name.ends_with(".tmp"))
            .then(|| uid.to_string())
        })
        .collect()
}

//! HAProxy in front of several radroute nodes, as deploy/cluster/haproxy.cfg does it: TCP mode
//! for DICOM, each node's health checked with `GET /readyz` on its admin port, so a node that
//! is down, draining or without PostgreSQL leaves the rotation. Started in the foreground
//! (`-db`) from a temporary directory; stopped on drop.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::{free_port, is_listening};
use crate::process::Daemon;

/// The HAProxy binary (Debian's package: deploy/setup.sh --test).
pub fn binary() -> PathBuf {
    for p in ["/usr/sbin/haproxy", "/usr/bin/haproxy"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("haproxy not installed: run deploy/setup.sh --test (apt package haproxy)");
}

/// One backend node: its DICOM port and its admin port (health check).
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// DICOM port of the node.
    pub dicom_port: u16,
    /// Admin HTTP port of the node (`/readyz`).
    pub admin_port: u16,
}

/// A running HAProxy.
pub struct HaProxy {
    /// The DICOM port modalities connect to.
    pub port: u16,
    /// Where its configuration and log are.
    pub dir: PathBuf,
    daemon: Daemon,
}

/// The configuration: round robin over the nodes, health checks every 500 ms (2 failures
/// take a node out, 2 successes put it back), connections to a node that is gone are
/// redispatched to another.
pub fn config_text(port: u16, backends: &[Backend]) -> String {
    let mut t = String::new();
    t.push_str(
        "global\n  maxconn 2000\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  \
         timeout client 120s\n  timeout server 120s\n  timeout check 2s\n  retries 2\n  \
         option redispatch\n\n",
    );
    writeln!(
        t,
        "frontend dicom\n  bind 127.0.0.1:{port}\n  default_backend radroute\n"
    )
    .unwrap();
    t.push_str(
        "backend radroute\n  balance roundrobin\n  option httpchk GET /readyz\n  \
         http-check expect status 200\n  default-server inter 500ms fall 2 rise 2\n",
    );
    for (i, b) in backends.iter().enumerate() {
        writeln!(
            t,
            "  server node{i} 127.0.0.1:{} check port {}",
            b.dicom_port, b.admin_port
        )
        .unwrap();
    }
    t
}

impl HaProxy {
    /// Writes the configuration under `dir`, starts HAProxy and waits for its port.
    pub fn start(dir: &Path, backends: &[Backend]) -> HaProxy {
        std::fs::create_dir_all(dir).expect("haproxy dir");
        let port = free_port();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config_text(port, backends)).expect("write haproxy.cfg");
        let mut cmd = Command::new(binary());
        cmd.arg("-f").arg(&cfg).arg("-db");
        let log = dir.join("haproxy.log");
        let mut daemon = Daemon::spawn("haproxy", cmd, &log);
        crate::wait_for(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if let Some(st) = daemon.try_exited() {
                    panic!("haproxy exited: {st}\n{}", daemon.log_tail(30));
                }
                is_listening(port).then_some(())
            },
            || {
                format!(
                    "haproxy not listening on {port}: {}",
                    crate::file_tail(&log, 30)
                )
            },
        );
        HaProxy {
            port,
            dir: dir.to_path_buf(),
            daemon,
        }
    }

    /// The last `n` lines of its log (health check changes are logged there).
    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }
}

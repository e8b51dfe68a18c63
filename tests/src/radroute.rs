//! The daemon under test: a generated configuration, a temporary spool, start (wait for
//! `/readyz` and the DICOM port), stop (SIGTERM), SIGKILL, restart, `radroute queue counts`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::{free_port, is_listening};
use crate::process::Daemon;

/// The binary under test: `$RADROUTE_BIN`, else `<workspace>/target/debug/radroute`.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("RADROUTE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::workspace_root().join("target"));
            target.join("debug").join("radroute")
        });
    assert!(
        path.is_file(),
        "radroute binary not found at {}: run `cargo build -p radroute` first, or set RADROUTE_BIN",
        path.display()
    );
    path
}

/// Runs `radroute <args> <file>` to completion, bounded by 30 s, and returns its exit code and
/// output (stdout then stderr): for tests of one-shot commands (`check-config`, `serve` that
/// must refuse to start) where a hang must fail the test instead of stalling the suite.
pub fn run_cli(args: &[&str], file: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg(file);
    crate::dcmtk::run_bounded(cmd, Duration::from_secs(30))
}

/// A `[[destinations]]` entry.
#[derive(Debug, Clone)]
pub struct Dest {
    /// Name used by routes.
    pub name: String,
    /// Called AE title.
    pub ae_title: String,
    /// Loopback port.
    pub port: u16,
    /// Extra TOML lines for this `[[destinations]]` entry (e.g. TLS keys).
    pub extra: String,
}

/// What a test wants in the configuration file. Unset keys keep radroute's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// `node.ae_title`.
    pub ae_title: String,
    /// `node.listen` port (127.0.0.1).
    pub port: u16,
    /// `admin.listen` port (127.0.0.1).
    pub admin_port: u16,
    /// `node.max_associations`.
    pub max_associations: usize,
    /// `node.sop_classes` (empty: radroute's built-in list).
    pub sop_classes: Vec<String>,
    /// `node.require_called_ae_title`.
    pub require_called_ae_title: bool,
    /// Destinations; one route sends everything to all of them.
    pub destinations: Vec<Dest>,
    /// Extra TOML appended as is.
    pub extra: String,
    /// `node.min_free_mb` (default 10).
    pub min_free_mb: u64,
    /// Extra TOML lines inside `[node]` (e.g. `allow = [...]`).
    pub node_extra: String,
    /// `[[routes]]` (and `[routing]`) TOML replacing the default route that sends everything to
    /// every destination.
    pub routes: Option<String>,
    /// `admin.token`; the harness sends it on its own admin requests.
    pub admin_token: Option<String>,
    /// `queue.max_attempts` (default 50).
    pub max_attempts: u32,
    /// Extra TOML lines inside `[spool]` (e.g. `retention_secs = 5`).
    pub spool_extra: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ae_title: "RADROUTE".into(),
            port: free_port(),
            admin_port: free_port(),
            max_associations: 32,
            sop_classes: Vec::new(),
            require_called_ae_title: false,
            destinations: Vec::new(),
            extra: String::new(),
            min_free_mb: 10,
            node_extra: String::new(),
            routes: None,
            admin_token: None,
            max_attempts: 50,
            spool_extra: String::new(),
        }
    }
}

impl Config {
    /// Adds a destination and returns `self`.
    pub fn destination(self, name: &str, ae_title: &str, port: u16) -> Self {
        self.destination_with(name, ae_title, port, "")
    }

    /// Adds a destination with extra TOML lines for its entry and returns `self`.
    pub fn destination_with(mut self, name: &str, ae_title: &str, port: u16, extra: &str) -> Self {
        self.destinations.push(Dest {
            name: name.into(),
            ae_title: ae_title.into(),
            port,
            extra: extra.into(),
        });
        self
    }

    /// The TOML text, with the spool under `dir`.
    pub fn to_toml(&self, dir: &Path) -> String {
        let mut t = String::new();
        let q = |s: &str| format!("{s:?}");
        writeln!(t, "[node]").unwrap();
        writeln!(t, "ae_title = {}", q(&self.ae_title)).unwrap();
        writeln!(t, "listen = \"127.0.0.1:{}\"", self.port).unwrap();
        writeln!(t, "max_associations = {}", self.max_associations).unwrap();
        writeln!(t, "min_free_mb = {}", self.min_free_mb).unwrap();
        writeln!(
            t,
            "require_called_ae_title = {}",
            self.require_called_ae_title
        )
        .unwrap();
        t.push_str(&self.node_extra);
        if !t.ends_with('\n') {
            t.push('\n');
        }
        if !self.sop_classes.is_empty() {
            let list: Vec<String> = self.sop_classes.iter().map(|s| q(s)).collect();
            writeln!(t, "sop_classes = [{}]", list.join(", ")).unwrap();
        }
        writeln!(
            t,
            "\n[spool]\ndir = {}",
            q(&dir.join("spool").to_string_lossy())
        )
        .unwrap();
        t.push_str(&self.spool_extra);
        if !t.ends_with('\n') {
            t.push('\n');
        }
        writeln!(
            t,
            "\n[queue]\nbackoff_base_secs = 0.2\nbackoff_max_secs = 1.0\nmax_attempts = {}",
            self.max_attempts
        )
        .unwrap();
        writeln!(t, "\n[admin]\nlisten = \"127.0.0.1:{}\"", self.admin_port).unwrap();
        if let Some(token) = &self.admin_token {
            writeln!(t, "token = {}", q(token)).unwrap();
        }
        // radroute refuses a configuration where an instance would go nowhere: tests that do
        // not care about forwarding get a destination nobody listens on.
        let void = [Dest {
            name: "void".into(),
            ae_title: "VOID".into(),
            port: free_port(),
            extra: String::new(),
        }];
        let dests: &[Dest] = if self.destinations.is_empty() {
            &void
        } else {
            &self.destinations
        };
        for d in dests {
            writeln!(
                t,
                "\n[[destinations]]\nname = {}\nae_title = {}\naddress = \"127.0.0.1:{}\"\nconnect_timeout_secs = 3\nio_timeout_secs = 30",
                q(&d.name),
                q(&d.ae_title),
                d.port
            )
            .unwrap();
            t.push_str(&d.extra);
            if !t.ends_with('\n') {
                t.push('\n');
            }
        }
        t.push_str(&self.extra);
        if !t.ends_with('\n') {
            t.push('\n');
        }
        match &self.routes {
            Some(routes) => t.push_str(routes),
            None => {
                let names: Vec<String> = dests.iter().map(|d| q(&d.name)).collect();
                writeln!(t, "\n[[routes]]\ndestinations = [{}]", names.join(", ")).unwrap();
            }
        }
        t
    }
}

/// A running radroute. Stopped with SIGTERM when dropped.
pub struct Radroute {
    /// The configuration it was started with.
    pub config: Config,
    /// The configuration file.
    pub config_path: PathBuf,
    /// Its working directory (spool, log).
    pub dir: PathBuf,
    /// Environment overrides it was started with.
    pub env: Vec<(String, String)>,
    /// The DICOM port it is expected to listen on (differs from the file's under overrides).
    pub dicom_port: u16,
    daemon: Option<Daemon>,
}

impl Radroute {
    /// Writes the configuration under `dir`, starts radroute and waits until it is ready.
    pub fn start(dir: &Path, config: Config) -> Radroute {
        Self::start_with_env(dir, config, &[], None)
    }

    /// Like [`Radroute::start`] with environment variables; `dicom_port` is the port to wait for
    /// when the environment moves the listener (default: the file's).
    pub fn start_with_env(
        dir: &Path,
        config: Config,
        env: &[(&str, &str)],
        dicom_port: Option<u16>,
    ) -> Radroute {
        let config_path = dir.join("radroute.toml");
        std::fs::write(&config_path, config.to_toml(dir)).expect("write radroute.toml");
        let mut r = Radroute {
            dicom_port: dicom_port.unwrap_or(config.port),
            config,
            config_path,
            dir: dir.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            daemon: None,
        };
        r.launch();
        r
    }

    /// The log file (all runs of this instance append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("radroute.log")
    }

    /// The last `n` log lines, ANSI colours removed.
    pub fn log_tail(&self, n: usize) -> String {
        crate::file_tail(&self.log_path(), n)
    }

    /// The whole log, ANSI colours removed.
    pub fn log(&self) -> String {
        crate::strip_ansi(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    /// A failure message with the log tail.
    pub fn context(&self, what: &str) -> String {
        format!(
            "{what}\n--- radroute log tail ({}) ---\n{}\n---",
            self.log_path().display(),
            self.log_tail(40)
        )
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--config").arg(&self.config_path);
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut daemon = Daemon::spawn("radroute", cmd, &self.log_path());
        let admin = self.config.admin_port;
        let port = self.dicom_port;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.try_exited() {
                panic!(
                    "{}",
                    self.context(&format!("radroute exited during start-up: {status}"))
                );
            }
            let ready = self
                .admin_request("GET", "/readyz")
                .map(|r| r.status == 200)
                .unwrap_or(false);
            if ready && is_listening(port) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                drop(daemon);
                panic!(
                    "{}",
                    self.context(&format!(
                        "radroute not ready within 30 s (/readyz on {admin}, DICOM on {port})"
                    ))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(daemon);
    }

    /// An admin HTTP request (with the configured token, if any).
    pub fn admin_request(&self, method: &str, path: &str) -> Result<crate::http::Response, String> {
        let auth = self
            .config
            .admin_token
            .as_ref()
            .map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let body: Option<&[u8]> = (method == "POST").then_some(&[]);
        crate::http::request_with_headers(
            method,
            self.config.admin_port,
            path,
            &headers,
            body,
            Duration::from_secs(10),
        )
    }

    /// GET `path` on the admin surface; panics unless 200; the body as JSON.
    pub fn api_json(&self, path: &str) -> serde_json::Value {
        let r = self
            .admin_request("GET", path)
            .unwrap_or_else(|e| panic!("{}", self.context(&format!("GET {path}: {e}"))));
        assert_eq!(
            r.status,
            200,
            "{}",
            self.context(&format!("GET {path}: HTTP {} {}", r.status, r.text()))
        );
        r.json().unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET /metrics (text).
    pub fn metrics(&self) -> String {
        self.admin_request("GET", "/metrics")
            .map(|r| r.text())
            .unwrap_or_else(|e| panic!("{}", self.context(&format!("GET /metrics: {e}"))))
    }

    /// The instances of a study as the admin API reports them (`GET /api/v1/studies/{uid}`),
    /// or an empty list while it knows none.
    pub fn study_instances(&self, study_instance_uid: &str) -> Vec<serde_json::Value> {
        match self.admin_request("GET", &format!("/api/v1/studies/{study_instance_uid}")) {
            Ok(r) if r.status == 200 => r
                .json()
                .ok()
                .and_then(|v| v["instances"].as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Writes `config` as the new configuration file (same spool) and sends SIGHUP; returns
    /// once the log shows the reload was applied or refused (bounded), true when applied.
    pub fn reload(&mut self, config: Config) -> bool {
        std::fs::write(&self.config_path, config.to_toml(&self.dir)).expect("write radroute.toml");
        self.config = config;
        self.sighup()
    }

    /// SIGHUP; waits (up to 15 s) for "configuration reloaded" or "reload refused" in the log
    /// and returns true when it was applied.
    pub fn sighup(&self) -> bool {
        let count = || {
            let log = self.log();
            (
                log.matches("configuration reloaded").count(),
                log.matches("reload refused").count(),
            )
        };
        let (ok0, bad0) = count();
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGHUP);
        }
        crate::wait_for(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                let (ok, bad) = count();
                if ok > ok0 {
                    Some(true)
                } else if bad > bad0 {
                    Some(false)
                } else {
                    None
                }
            },
            || self.context("SIGHUP: neither reloaded nor refused within 15 s"),
        )
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("radroute running").pid()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon
            .as_mut()
            .map(|d| d.try_exited().is_none())
            .unwrap_or(false)
    }

    /// SIGKILL: no shutdown, no flushing.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill9();
        }
    }

    /// SIGTERM and wait (up to 40 s).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            if !d.signal_and_wait(libc::SIGTERM, Duration::from_secs(40)) {
                panic!(
                    "{}",
                    self.context("radroute did not stop within 40 s of SIGTERM")
                );
            }
        }
    }

    /// Starts it again with the same configuration, spool and environment.
    pub fn restart(&mut self) {
        assert!(self.daemon.is_none(), "restart: radroute still running");
        self.launch();
    }

    /// `radroute queue list --json`: one object per job (id, instance, destination, state,
    /// attempts, sop_instance_uid, last_error, last_status).
    pub fn queue_list(&self) -> Vec<serde_json::Value> {
        let out = Command::new(binary())
            .args(["queue", "list", "--json", "--limit", "10000", "--config"])
            .arg(&self.config_path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run radroute queue list");
        assert!(
            out.status.success(),
            "radroute queue list failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad job JSON {l}: {e}")))
            .collect()
    }

    /// The spool directory (`[spool] dir`).
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Instance files in the spool (`incoming/`, `processed/`, `header/`), sorted.
    pub fn spool_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = ["incoming", "processed", "header"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.spool_dir().join(d)).ok())
            .flat_map(|entries| entries.flatten().map(|e| e.path()))
            .collect();
        files.sort();
        files
    }

    /// `radroute queue ARGS --config FILE` (works whether the node runs or not): the exit
    /// status, stdout and stderr.
    pub fn queue_cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(binary())
            .arg("queue")
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run radroute queue");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `radroute queue counts --json`.
    pub fn queue_counts(&self) -> serde_json::Value {
        let out = Command::new(binary())
            .args(["queue", "counts", "--json", "--config"])
            .arg(&self.config_path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run radroute queue counts");
        assert!(
            out.status.success(),
            "radroute queue counts failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON in `radroute queue counts --json` output: {text}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad counts JSON {line}: {e}"))
    }
}

impl Drop for Radroute {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
        }
    }
}

/// The value of one sample of a Prometheus text exposition: the line of metric `name` whose
/// labels include every `labels` pair (in any order). None when absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        (n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}

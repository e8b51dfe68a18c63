//! dcmtk command-line tools (by absolute path: pynetdicom installs its own `storescu` on PATH),
//! always with `TCP_NODELAY=1` (otherwise each DIMSE exchange stalls ~40 ms on Nagle).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `$DCMTK_BIN/<name>`, default /usr/bin/<name>.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("DCMTK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "dcmtk tool {} not found (install dcmtk or set DCMTK_BIN)",
        path.display()
    );
    path
}

/// Runs `cmd` to completion with a time limit; the text is stdout followed by stderr.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> (Option<i32>, String) {
    cmd.env("TCP_NODELAY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<Output>();
    std::thread::spawn(move || {
        if let Ok(out) = child.wait_with_output() {
            let _ = tx.send(out);
        }
    });
    match rx.recv_timeout(limit) {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code(), text)
        }
        Err(_) => {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

/// What one storescu run reported, from its `-v` log.
#[derive(Debug, Clone)]
pub struct StoreRun {
    /// Exit status.
    pub code: Option<i32>,
    /// The whole output.
    pub log: String,
    /// Per file sent: the store response line ("Success" or the failure text), or None
    /// when no response came back.
    pub responses: BTreeMap<PathBuf, Option<String>>,
}

impl StoreRun {
    /// Files whose store was answered with success.
    pub fn succeeded(&self) -> Vec<PathBuf> {
        self.responses
            .iter()
            .filter(|(_, r)| r.as_deref() == Some("Success"))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// True when every given file got a success response.
    pub fn all_ok(&self, files: &[PathBuf]) -> bool {
        files.iter().all(|f| {
            self.responses
                .get(f)
                .map(|r| r.as_deref() == Some("Success"))
                == Some(true)
        })
    }
}

/// Parses storescu `-v` output: "I: Sending file: PATH" followed by
/// "I: Received Store Response (Success)" (or "(Failed: ...)", "(Warning ...)").
pub fn parse_storescu_log(log: &str) -> BTreeMap<PathBuf, Option<String>> {
    let mut map = BTreeMap::new();
    let mut current: Option<PathBuf> = None;
    for line in log.lines() {
        let line = line.trim();
        if let Some(path) = line.strip_prefix("I: Sending file: ") {
            let p = PathBuf::from(path.trim());
            map.insert(p.clone(), None);
            current = Some(p);
        } else if let Some(rest) = line.strip_prefix("I: Received Store Response") {
            if let Some(p) = current.take() {
                let status = rest
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .to_string();
                map.insert(p, Some(status));
            }
        }
    }
    map
}

/// `storescu -v -nh [extra] 127.0.0.1 port files...` with called AE `called`.
pub fn storescu(called: &str, port: u16, extra: &[&str], files: &[PathBuf]) -> StoreRun {
    storescu_as("STORESCU", called, port, extra, files)
}

/// [`storescu`] with calling AE title `calling`.
pub fn storescu_as(
    calling: &str,
    called: &str,
    port: u16,
    extra: &[&str],
    files: &[PathBuf],
) -> StoreRun {
    let mut cmd = Command::new(tool("storescu"));
    cmd.args([
        "-v", "-nh", "-aet", calling, "-aec", called, "-to", "10", "-ta", "10", "-td", "60",
    ])
    .args(extra)
    .arg("127.0.0.1")
    .arg(port.to_string())
    .args(files);
    let (code, log) = run_bounded(cmd, Duration::from_secs(300));
    StoreRun {
        code,
        responses: parse_storescu_log(&log),
        log,
    }
}

/// `echoscu` to 127.0.0.1:port: (exit status, output).
pub fn echoscu(called: &str, port: u16) -> (Option<i32>, String) {
    let mut cmd = Command::new(tool("echoscu"));
    cmd.args([
        "-v", "-aet", "ECHOSCU", "-aec", called, "-to", "5", "-ta", "5", "-td", "10",
    ])
    .arg("127.0.0.1")
    .arg(port.to_string());
    run_bounded(cmd, Duration::from_secs(30))
}

/// `echoscu` with calling AE `calling` and `extra` options (e.g. `+tls …`): (exit status, output).
pub fn echoscu_as(calling: &str, called: &str, port: u16, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(tool("echoscu"));
    cmd.args([
        "-v", "-aet", calling, "-aec", called, "-to", "5", "-ta", "5", "-td", "10",
    ])
    .args(extra)
    .arg("127.0.0.1")
    .arg(port.to_string());
    run_bounded(cmd, Duration::from_secs(30))
}

/// `dcmdump` of one file (for failure messages).
pub fn dcmdump(file: &Path) -> String {
    let mut cmd = Command::new(tool("dcmdump"));
    cmd.arg("-q").arg(file);
    run_bounded(cmd, Duration::from_secs(30)).1
}

/// Starts `storescu -v -nh` in the background with its output in `log` (for tests that act
/// while the stream is running); read progress with [`parse_storescu_log`] on the log.
pub fn storescu_spawn(
    called: &str,
    port: u16,
    extra: &[&str],
    files: &[PathBuf],
    log: &Path,
) -> crate::process::Daemon {
    let mut cmd = Command::new(tool("storescu"));
    cmd.env("TCP_NODELAY", "1")
        .args([
            "-v", "-nh", "-aet", "STORESCU", "-aec", called, "-to", "10", "-ta", "10", "-td", "60",
        ])
        .args(extra)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(files);
    crate::process::Daemon::spawn("storescu", cmd, log)
}

/// `dcmconv +te IN OUT`: re-encodes a file as Explicit VR Little Endian (used to read deflated
/// originals, which dicom-object cannot read without its `deflate` feature; enabling it here
/// would change the features of the radroute build itself).
pub fn to_explicit_le(input: &Path, output: &Path) {
    let mut cmd = Command::new(tool("dcmconv"));
    cmd.arg("+te").arg(input).arg(output);
    let (code, out) = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(code, Some(0), "dcmconv +te {}: {out}", input.display());
}

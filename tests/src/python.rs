//! Small pynetdicom scripts (tests/scripts) for what dcmtk cannot do: send a file's data set
//! bytes verbatim, hold an association open.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// `$RADROUTE_E2E_PYTHON`, else `<workspace>/.venv/bin/python` (needs pynetdicom).
pub fn python() -> PathBuf {
    let p = std::env::var_os("RADROUTE_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/python"));
    assert!(
        p.is_file(),
        "Python with pynetdicom not found at {} (set RADROUTE_E2E_PYTHON)",
        p.display()
    );
    p
}

/// tests/scripts/<name>.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// How a raw send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOutcome {
    /// A C-STORE-RSP with this status.
    Status(u16),
    /// The association was rejected.
    Rejected,
    /// The context was not accepted.
    NoContext,
    /// No response before the script's DIMSE timeout.
    NoResponse,
}

/// Sends the data set bytes of `file` verbatim in one C-STORE (tests/scripts/raw_store.py).
/// `ts`, `sop_class`, `sop_instance` override the file meta's.
pub fn raw_store(
    port: u16,
    called: &str,
    file: &Path,
    ts: Option<&str>,
    sop_class: Option<&str>,
    sop_instance: Option<&str>,
    timeout: Duration,
) -> (RawOutcome, String) {
    let mut cmd = Command::new(python());
    cmd.arg(script("raw_store.py"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg(called)
        .arg(file)
        .arg("--timeout")
        .arg(timeout.as_secs().to_string());
    if let Some(ts) = ts {
        cmd.args(["--ts", ts]);
    }
    if let Some(c) = sop_class {
        cmd.args(["--sop-class", c]);
    }
    if let Some(i) = sop_instance {
        cmd.args(["--sop-instance", i]);
    }
    let (_, out) = crate::dcmtk::run_bounded(cmd, timeout + Duration::from_secs(30));
    let line = out
        .lines()
        .rev()
        .find(|l| {
            l.starts_with("STATUS ")
                || ["ASSOC_REJECTED", "NO_CONTEXT", "NO_RESPONSE"].contains(&l.trim())
        })
        .unwrap_or_else(|| panic!("raw_store.py gave no result:\n{out}"))
        .trim()
        .to_string();
    let outcome = match line.as_str() {
        "ASSOC_REJECTED" => RawOutcome::Rejected,
        "NO_CONTEXT" => RawOutcome::NoContext,
        "NO_RESPONSE" => RawOutcome::NoResponse,
        s => RawOutcome::Status(
            u16::from_str_radix(s.trim_start_matches("STATUS 0x"), 16)
                .unwrap_or_else(|_| panic!("bad status line {s:?}")),
        ),
    };
    (outcome, out)
}

/// An association held open by tests/scripts/hold_assoc.py until released or dropped.
pub struct HeldAssociation {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl HeldAssociation {
    /// Opens a Verification association to 127.0.0.1:`port` and waits until it is established
    /// (panics with the script's output otherwise).
    pub fn open(port: u16, called: &str) -> HeldAssociation {
        let mut child = Command::new(python())
            .arg(script("hold_assoc.py"))
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(called)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hold_assoc.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.trim() == "ESTABLISHED" => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("hold_assoc.py did not establish an association: {seen:?}");
                }
            }
        }
        let stdin = child.stdin.take();
        HeldAssociation { child, stdin }
    }

    /// Releases the association (A-RELEASE) and waits for the script to end.
    pub fn release(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"release\n");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("hold_assoc.py did not release within 20 s");
    }
}

impl Drop for HeldAssociation {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

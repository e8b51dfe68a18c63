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

/// What tests/scripts/make_instance.py should write.
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    /// `CR`, `DX` or `CT`.
    pub modality: &'a str,
    /// `hgrad` (the tiny test model labels it HAND), `vgrad` or `flat` (the tiny model abstains).
    pub pattern: &'a str,
    /// Study Instance UID (default: a new one).
    pub study: Option<&'a str>,
    /// Attributes set by keyword (`("InstitutionName", "ST ELSEWHERE")`).
    pub set: &'a [(&'a str, &'a str)],
}

impl Default for Instance<'_> {
    fn default() -> Self {
        Instance {
            modality: "CR",
            pattern: "hgrad",
            study: None,
            set: &[],
        }
    }
}

/// Writes small (64×64, Explicit VR LE) instances with one run of tests/scripts/make_instance.py;
/// returns their SOP Instance UIDs in order.
pub fn make_instances(files: &[(&Path, Instance)]) -> Vec<String> {
    let Some((first, _)) = files.first() else {
        return Vec::new();
    };
    let dir = first.parent().expect("instance file has a folder");
    std::fs::create_dir_all(dir).expect("create instance dir");
    let spec: String = files
        .iter()
        .map(|(out, i)| {
            let set: serde_json::Map<String, serde_json::Value> = i
                .set
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                .collect();
            let mut o = serde_json::json!({
                "out": out, "modality": i.modality, "pattern": i.pattern, "set": set,
            });
            if let Some(study) = i.study {
                o["study"] = study.into();
            }
            format!("{o}\n")
        })
        .collect();
    run_batch(
        "make_instance.py",
        &dir.join(format!(".make_instances.{}.jsonl", files.len())),
        &spec,
        files.len(),
    )
}

/// Runs a tests/scripts batch writer (`SCRIPT --batch SPEC`, one JSON object a line in `spec`,
/// written to `spec_path`) and returns the SOP Instance UIDs it printed, checking there is one
/// per line of the spec.
fn run_batch(script_name: &str, spec_path: &Path, spec: &str, expected: usize) -> Vec<String> {
    std::fs::write(spec_path, spec).expect("write spec");
    let mut cmd = Command::new(python());
    cmd.arg(script(script_name)).arg("--batch").arg(spec_path);
    let (code, text) = crate::dcmtk::run_bounded(cmd, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{script_name} failed:\n{text}");
    let uids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("1.2.") || l.starts_with("2.25."))
        .map(str::to_string)
        .collect();
    assert_eq!(uids.len(), expected, "{script_name} output:\n{text}");
    uids
}

/// Wraps real radiographs (PNG/JPEG) as CR files with tests/scripts/wrap_radiograph.py: each
/// item is (output file, image, attributes to set by keyword; `null` removes one). Returns the
/// SOP Instance UIDs in order.
pub fn wrap_radiographs(items: &[(PathBuf, PathBuf, serde_json::Value)]) -> Vec<String> {
    let Some((first, _, _)) = items.first() else {
        return Vec::new();
    };
    let dir = first.parent().expect("output file has a folder");
    std::fs::create_dir_all(dir).expect("create input dir");
    let spec: String = items
        .iter()
        .map(|(out, image, set)| {
            assert!(image.is_file(), "radiograph missing: {}", image.display());
            let line = serde_json::json!({"out": out, "image": image, "set": set});
            format!("{line}\n")
        })
        .collect();
    run_batch(
        "wrap_radiograph.py",
        &dir.join("wrap.jsonl"),
        &spec,
        items.len(),
    )
}

/// Writes one small instance (see [`make_instances`]); returns its SOP Instance UID.
pub fn make_instance(out: &Path, spec: &Instance) -> String {
    make_instances(&[(out, spec.clone())]).remove(0)
}

//! Child processes owned by a test: started in their own process group, output to a log file,
//! killed (the whole group) when dropped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running peer or daemon whose stdout and stderr go to `log`.
pub struct Daemon {
    /// Short name for messages.
    pub name: String,
    /// Where its output goes.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Spawns `cmd` with output appended to `log`, in a new process group.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Daemon {
            name: name.to_string(),
            log: log.to_path_buf(),
            child: Some(child),
        }
    }

    /// Process id (panics when already reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process running").id()
    }

    /// The exit status if the process has ended.
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        crate::file_tail(&self.log, n)
    }

    /// Sends `signal` to the process group and waits up to `timeout` for the process to end;
    /// SIGKILLs it after that. Returns whether it ended within `timeout`.
    pub fn signal_and_wait(&mut self, signal: i32, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, signal);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() >= deadline {
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
                let _ = child.wait();
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no grace.
    pub fn kill9(&mut self) {
        self.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
        }
    }
}

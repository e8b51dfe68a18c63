//! A throw-away PostgreSQL server for tests, started from the distribution's binaries in a
//! temporary directory on a free loopback port.
//!
//! Why this shape:
//!
//! - **One server per test binary** ([`PgServer::shared`]) and **one database per test**
//!   ([`PgServer::new_database`]): `initdb` plus start-up costs one to two seconds, a database
//!   a few tens of milliseconds, so tests stay independent without paying start-up each time.
//!   Tests that stop and restart the server own one ([`PgServer::start`]).
//! - **Nothing outlives the test process.** An owned server is stopped by `Drop`; the shared one
//!   by an `atexit` handler (statics are never dropped); and every server has a watcher process
//!   (`sh`) that stops it and removes its directory when the test process disappears without
//!   running either (a panic across threads, `SIGKILL`, a killed CI job).
//! - **Fails loudly**: a missing PostgreSQL installation panics with what to install; it never
//!   skips.
//!
//! PostgreSQL refuses to run as root: as root (tests here and in CI) `initdb` and `pg_ctl` run
//! as the `postgres` user (`su`), which owns the data directory; the temporary directory is made
//! traversable for it. As another user they run as that user. Binaries come from
//! `$PG_BIN` when set, else `/usr/lib/postgresql/<version>/bin` (15 preferred, else the newest
//! installed).
//!
//! Test servers run with `fsync=off` (fast, a crash of the machine is not under test) unless
//! started with [`PgOptions::durable`] (benchmarks: the product's durability settings).

use std::ffi::CString;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a test server is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgOptions {
    /// Keep PostgreSQL's default durability (`fsync=on`, `synchronous_commit=on`) instead of
    /// the fast test settings: for benchmarks whose numbers must mean something.
    pub durable: bool,
    /// Serve TLS with this certificate and key (PEM; copied next to the data directory with the
    /// owner and mode PostgreSQL demands); `None`: plain TCP only.
    pub tls: Option<ServerTls>,
}

/// The certificate a test server presents when [`PgOptions::tls`] is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A running PostgreSQL server in a temporary directory. Dropping it stops the server and
/// removes the directory.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    /// Holds the server's files; removed on drop (after the server stopped).
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    port: u16,
    options: PgOptions,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    watcher: Mutex<Option<Child>>,
}

static SHARED: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// How long start and stop may take before the test fails.
const PG_CTL_TIMEOUT_SECS: u32 = 60;

impl PgServer {
    /// The server shared by every test of this test binary, started on first use and stopped
    /// when the process exits.
    pub fn shared() -> &'static PgServer {
        SHARED.get_or_init(|| {
            let server = PgServer::start_with(PgOptions::default());
            extern "C" fn stop_shared() {
                if let Some(server) = SHARED.get() {
                    server.stop_now();
                }
            }
            // SAFETY: registering a plain `extern "C" fn` with no captured state.
            unsafe {
                libc::atexit(stop_shared);
            }
            server
        })
    }

    /// A server of its own (for tests that stop and restart it), with the fast test settings.
    pub fn start() -> PgServer {
        PgServer::start_with(PgOptions::default())
    }

    /// A server of its own with `options`. Panics, saying what is missing, when PostgreSQL is
    /// not installed or does not start.
    pub fn start_with(options: PgOptions) -> PgServer {
        let bin = pg_bin();
        let owner = server_user();
        let dir = tempfile::Builder::new()
            .prefix("radroute-pg-")
            .tempdir_in(parent_dir(owner.is_some()))
            .unwrap_or_else(|e| panic!("postgres test server: cannot create a temp dir: {e}"));
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        // The postgres user must traverse the directory and own the data directory.
        set_mode(&root, 0o755);
        std::fs::create_dir(&data)
            .unwrap_or_else(|e| panic!("postgres test server: mkdir {}: {e}", data.display()));
        set_mode(&data, 0o700);
        if let Some((uid, gid)) = owner {
            chown(&root, uid, gid);
            chown(&data, uid, gid);
        }
        let mut server = PgServer {
            bin,
            dir: Some(dir),
            data,
            port: 0,
            options,
            owner,
            watcher: Mutex::new(None),
        };
        // Before anything starts: a test killed during initdb or pg_ctl start leaves nothing.
        server.spawn_watcher();
        let initdb = server.bin.join("initdb");
        let out = server.run_as_server_user(&[
            initdb.to_string_lossy().as_ref(),
            "-D",
            &server.data.to_string_lossy(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        assert!(
            out.0,
            "postgres test server: initdb failed (is PostgreSQL installed? deploy/setup.sh --test \
             installs it):\n{}",
            out.1
        );
        // A port that was free a moment ago; retried if another process took it meanwhile.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => return server,
                Err(log) => last = log,
            }
        }
        panic!("postgres test server: pg_ctl start failed 5 times; last log:\n{last}");
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of database `db` (user `postgres`, no password: trust on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new empty database with a unique name and returns its URL.
    pub fn new_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` with psql on database `db` and returns its unaligned, tuples-only output
    /// (`|`-separated columns, one row a line). Panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-d",
                db,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("postgres test server: cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql failed on {db}: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its files so that
    /// [`PgServer::restart`] brings the same data back on the same port.
    pub fn stop(&self) {
        let (ok, log) = self.pg_ctl(&["stop", "-m", "fast"]);
        assert!(ok, "postgres test server: pg_ctl stop failed:\n{log}");
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) {
        if let Err(log) = self.pg_ctl_start() {
            panic!("postgres test server: restart failed:\n{log}");
        }
    }

    /// The server's log (start-up messages, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data
            .parent()
            .unwrap_or(&self.data)
            .join("postgres.log")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.data.display()
        );
        if !self.options.durable {
            opts.push_str(" -c fsync=off -c full_page_writes=off");
        }
        if let Some(tls) = &self.options.tls {
            let (cert, key) = self.install_tls(tls)?;
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
        }
        let log = self.log_path();
        let (ok, out) = self.pg_ctl(&["-l", &log.to_string_lossy(), "-o", &opts, "start"]);
        if ok {
            Ok(())
        } else {
            Err(format!("{out}\n{}", self.log()))
        }
    }

    /// Copies the TLS files beside the data directory, owned by the server's user, the key
    /// readable by it alone (PostgreSQL refuses a key others can read).
    fn install_tls(&self, tls: &ServerTls) -> Result<(PathBuf, PathBuf), String> {
        let root = self.data.parent().unwrap_or(&self.data);
        let (cert, key) = (root.join("server.crt"), root.join("server.key"));
        for (from, to, mode) in [(&tls.cert, &cert, 0o644), (&tls.key, &key, 0o600)] {
            std::fs::copy(from, to)
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
            set_mode(to, mode);
            if let Some((uid, gid)) = self.owner {
                chown(to, uid, gid);
            }
        }
        Ok((cert, key))
    }

    fn pg_ctl(&self, args: &[&str]) -> (bool, String) {
        let pg_ctl = self.bin.join("pg_ctl");
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        let data = self.data.to_string_lossy();
        let mut argv: Vec<&str> = vec![pg_ctl.to_str().unwrap_or("pg_ctl"), "-D", &data];
        argv.extend(["-w", "-t", &timeout]);
        argv.extend(args);
        self.run_as_server_user(&argv)
    }

    /// Runs `argv` as the server's user (via `su` when we are root); returns success and output.
    fn run_as_server_user(&self, argv: &[&str]) -> (bool, String) {
        let mut cmd = if self.owner.is_some() {
            let mut line = String::new();
            for a in argv {
                let _ = write!(line, "{} ", shell_quote(a));
            }
            let mut c = Command::new("su");
            c.args(["postgres", "-s", "/bin/sh", "-c", &line]);
            c
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        // Started in the background by pg_ctl, the server must not hold our pipes open.
        match cmd.stdin(Stdio::null()).output() {
            Ok(out) => (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run {argv:?}: {e}")),
        }
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Starts `sh` watching this process: once it is gone (killed without running `Drop` or
    /// the exit handler), the watcher sends whatever postmaster the data directory names
    /// SIGQUIT (immediate shutdown) for 10 s (a start may still be under way), then SIGKILL,
    /// and removes the directory.
    fn spawn_watcher(&self) {
        let Some(dir) = self.dir.as_ref() else {
            return;
        };
        let pidfile = shell_quote(&self.data.join("postmaster.pid").to_string_lossy());
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; pid=; \
             for i in 1 2 3 4 5 6 7 8 9 10; do \
               p=$(head -n1 {pidfile} 2>/dev/null); [ -n \"$p\" ] && pid=$p; \
               [ -n \"$pid\" ] && kill -QUIT \"$pid\" 2>/dev/null; sleep 1; \
             done; [ -n \"$pid\" ] && kill -KILL \"$pid\" 2>/dev/null; rm -rf {dir}",
            me = std::process::id(),
            dir = shell_quote(&dir.path().to_string_lossy()),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let (Ok(child), Ok(mut w)) = (child, self.watcher.lock()) {
            *w = Some(child);
        }
    }

    /// Immediate shutdown without waiting on locks that a panicking thread may hold: SIGQUIT to
    /// the postmaster, SIGKILL if it is still there after 5 s.
    fn stop_now(&self) {
        if let Some(pid) = self.postmaster_pid() {
            // SAFETY: signals to the server process this object started.
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if let Some(dir) = self.dir.as_ref() {
            let _ = std::fs::remove_dir_all(dir.path());
        }
        if let Ok(mut w) = self.watcher.try_lock() {
            if let Some(mut child) = w.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_now();
        // The TempDir's own cleanup finds the directory already gone.
        self.dir.take();
    }
}

/// The PostgreSQL binaries: `$PG_BIN`, else `/usr/lib/postgresql/15/bin`, else the newest
/// version installed there.
fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new("/usr/lib/postgresql");
    let preferred = root.join("15").join("bin");
    if preferred.join("initdb").is_file() {
        return preferred;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin and no $PG_BIN \
             (install the Debian package postgresql-15: deploy/setup.sh --test does)"
        ),
    }
}

/// `Some((uid, gid))` of the `postgres` user when we are root (PostgreSQL refuses to run as
/// root), `None` when we can run it ourselves.
fn server_user() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = CString::new("postgres").ok()?;
    // SAFETY: getpwnam with a valid C string; the result is read at once (tests are the only
    // users of this function and call it before spawning threads that use getpw*).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, but there is no `postgres` user to run PostgreSQL as (install the \
         Debian package postgresql-15: deploy/setup.sh --test does)"
    );
    // SAFETY: pw is non-null and points to libc's static passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some((uid, gid))
}

/// Where the server's directory goes: the temporary directory, unless the `postgres` user
/// (when we are root) could not reach it (`$TMPDIR` under a private home): then `/tmp`.
fn parent_dir(other_user: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    let reachable = tmp.ancestors().all(|p| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    });
    if other_user && !reachable {
        PathBuf::from("/tmp")
    } else {
        tmp
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("postgres test server: chmod {}: {e}", path.display()));
}

fn chown(path: &Path, uid: libc::uid_t, gid: libc::gid_t) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("postgres test server: chown {}: {e}", path.display()));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("postgres test server: no free loopback port: {e}"))
}

/// `s` in single quotes for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_server_serves_separate_databases() {
        let server = PgServer::shared();
        let a = server.new_database();
        let b = server.new_database();
        assert_ne!(a, b);
        let db = |url: &str| url.rsplit('/').next().unwrap_or_default().to_string();
        server.psql(&db(&a), "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
        server.psql(&db(&b), "CREATE TABLE t (x int)");
        assert_eq!(server.psql(&db(&a), "SELECT count(*) FROM t"), "1");
        assert_eq!(server.psql(&db(&b), "SELECT count(*) FROM t"), "0");
    }

    #[test]
    fn owned_server_stops_restarts_and_cleans_up() {
        let server = PgServer::start();
        let url = server.new_database();
        let db = url.rsplit('/').next().unwrap_or_default().to_string();
        server.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        server.stop();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err(),
            "still listening after stop"
        );
        server.restart();
        assert_eq!(server.psql(&db, "SELECT x FROM t"), "7");
        let dir = server.dir.as_ref().map(|d| d.path().to_path_buf());
        drop(server);
        let dir = dir.unwrap_or_default();
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

//! A real syslog receiver for audit tests: rsyslog (Debian package `rsyslog`, TLS through
//! `rsyslog-openssl`) started in the foreground with a generated configuration: `imtcp` on a
//! free loopback port (plain or TLS), every message's MSGID and MSG written one per line to a
//! file. `$RSYSLOGD` overrides /usr/sbin/rsyslogd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::{free_port, is_listening};
use crate::process::Daemon;

/// One received syslog message.
#[derive(Debug, Clone)]
pub struct Received {
    /// MSGID (`IHE+RFC-3881` for audit messages).
    pub msgid: String,
    /// MSG without the UTF-8 byte order mark.
    pub msg: String,
}

/// A running rsyslogd; stopped when dropped.
pub struct Rsyslog {
    /// The loopback port it listens on.
    pub port: u16,
    /// The file messages are written to.
    pub out: PathBuf,
    daemon: Daemon,
}

/// `$RSYSLOGD`, default /usr/sbin/rsyslogd; fails loudly when missing.
pub fn rsyslogd() -> PathBuf {
    let p = std::env::var_os("RSYSLOGD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/rsyslogd"));
    assert!(
        p.is_file(),
        "rsyslogd not found at {} (apt-get install rsyslog rsyslog-openssl; deploy/setup.sh --test)",
        p.display()
    );
    p
}

/// TLS material for the receiver: (CA, certificate, key), PEM.
pub struct TlsFiles<'a> {
    /// CA certificate.
    pub ca: &'a Path,
    /// Server certificate.
    pub cert: &'a Path,
    /// Server key.
    pub key: &'a Path,
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` over plain TCP, or TLS when `tls` is given, and waits until it
    /// listens.
    pub fn start(dir: &Path, tls: Option<TlsFiles<'_>>) -> Rsyslog {
        std::fs::create_dir_all(dir).expect("create rsyslog dir");
        let port = free_port();
        let out = dir.join("messages.log");
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let mut conf = format!("global(workDirectory={} maxMessageSize=\"64k\"", q(dir));
        if let Some(t) = &tls {
            conf.push_str(&format!(
                " defaultNetstreamDriver=\"ossl\" defaultNetstreamDriverCAFile={} \
                 defaultNetstreamDriverCertFile={} defaultNetstreamDriverKeyFile={}",
                q(t.ca),
                q(t.cert),
                q(t.key)
            ));
        }
        conf.push_str(")\n");
        if tls.is_some() {
            conf.push_str(
                "module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\" \
                 streamDriver.authMode=\"anon\")\n",
            );
        } else {
            conf.push_str("module(load=\"imtcp\")\n");
        }
        conf.push_str(&format!(
            "input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"audit\" type=\"string\" string=\"%msgid% %msg%\\n\")\n\
             action(type=\"omfile\" file={} template=\"audit\")\n",
            q(&out)
        ));
        let cfg = dir.join("rsyslog.conf");
        std::fs::write(&cfg, conf).expect("write rsyslog.conf");
        let mut cmd = Command::new(rsyslogd());
        cmd.arg("-n")
            .arg("-f")
            .arg(&cfg)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"));
        let daemon = Daemon::spawn("rsyslogd", cmd, &dir.join("rsyslogd.log"));
        let r = Rsyslog { port, out, daemon };
        crate::wait_for(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || is_listening(port).then_some(()),
            || {
                format!(
                    "rsyslogd did not listen on {port}:\n{}",
                    r.daemon.log_tail(30)
                )
            },
        );
        r
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (msgid, msg) = line.split_once(' ')?;
                Some(Received {
                    msgid: msgid.to_string(),
                    msg: msg.trim_start_matches('\u{FEFF}').to_string(),
                })
            })
            .collect()
    }

    /// The receiver's own log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        self.daemon.log_tail(n)
    }
}

/// Validates `xml` against the DICOM audit message schema vendored in crates/87-audit with
/// xmllint (libxml2-utils); returns xmllint's complaint when it does not validate.
pub fn validate_audit_xml(dir: &Path, xml: &str) -> Result<(), String> {
    let schema = crate::workspace_root().join("crates/87-audit/schema/dicom-audit-message.rng");
    let file = dir.join(format!("audit-{}.xml", free_port()));
    std::fs::write(&file, xml).expect("write xml");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint must be installed (apt-get install libxml2-utils)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

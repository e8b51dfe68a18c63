//! `[audit]`: where DICOM audit messages go (docs/audit.md). Off unless `repository` is set.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Config;

/// `[audit]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The audit repository (syslog receiver) as `host:port`; empty: no audit messages.
    pub repository: String,
    /// RFC 5425 syslog over TLS (else plain TCP).
    pub tls: bool,
    /// CA certificate(s) the repository's certificate must chain to (TLS).
    #[serde(with = "crate::checks::strict_path::option")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate to present (TLS, optional; needs `key_file`).
    #[serde(with = "crate::checks::strict_path::option")]
    pub cert_file: Option<PathBuf>,
    /// Key of `cert_file`.
    #[serde(with = "crate::checks::strict_path::option")]
    pub key_file: Option<PathBuf>,
    /// `AuditEnterpriseSiteID` of every message.
    pub site_id: Option<String>,
    /// Messages waiting for the repository at most; past it they are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            repository: String::new(),
            tls: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            site_id: None,
            queue_capacity: 10_000,
        }
    }
}

impl AuditConfig {
    /// Whether audit messages are sent.
    pub fn enabled(&self) -> bool {
        !self.repository.trim().is_empty()
    }

    /// `(host, port)` of the repository.
    fn host_port(&self) -> Result<(String, u16), String> {
        let (host, port) =
            self.repository.trim().rsplit_once(':').ok_or_else(|| {
                format!("audit.repository: {:?} is not host:port", self.repository)
            })?;
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            format!(
                "audit.repository: port of {:?} is not in 1..=65535",
                self.repository
            )
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!(
                "audit.repository: {:?} has no host",
                self.repository
            ));
        }
        Ok((host.to_string(), port))
    }

    /// Problems with `[audit]`, one per entry.
    pub fn problems(&self, cfg: &Config) -> Vec<String> {
        if !self.enabled() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if let Err(e) = self.host_port() {
            problems.push(e);
        }
        if self.queue_capacity == 0 || self.queue_capacity > 1_000_000 {
            problems.push("audit.queue_capacity: 1 to 1000000 messages".into());
        }
        if self.tls && self.ca_file.is_none() {
            problems.push(
                "audit.ca_file: required with tls = true (the CA that signed the repository's certificate)"
                    .into(),
            );
        }
        if !self.tls && (self.ca_file.is_some() || self.cert_file.is_some()) {
            problems.push("audit: ca_file/cert_file given but tls = false".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            problems.push("audit: cert_file and key_file go together".into());
        }
        if self.tls {
            if let Err(e) = self.tls_config(cfg) {
                problems.push(e);
            }
        }
        problems
    }

    fn tls_config(&self, cfg: &Config) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
        let ca = self
            .ca_file
            .as_deref()
            .map(|p| cfg.resolve(p))
            .ok_or("audit.ca_file: required with tls = true")?;
        let client = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((cfg.resolve(c), cfg.resolve(k))),
            _ => None,
        };
        crate::tls::client_config(
            &ca,
            client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .map_err(|e| format!("audit TLS: {e}"))
    }

    /// The sender's settings; `None` when auditing is off.
    pub fn sink_settings(
        &self,
        cfg: &Config,
    ) -> Result<Option<radroute_audit::SinkSettings>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        let (host, port) = self.host_port()?;
        let tls = if self.tls {
            Some(self.tls_config(cfg)?)
        } else {
            None
        };
        Ok(Some(radroute_audit::SinkSettings {
            host,
            port,
            tls,
            queue_capacity: self.queue_capacity,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        }))
    }

    /// One line for check-config.
    pub fn summary(&self) -> String {
        if self.enabled() {
            format!(
                "audit messages: on, to {} over {}",
                self.repository.trim(),
                if self.tls { "TLS (RFC 5425)" } else { "TCP" }
            )
        } else {
            "audit messages: off (no [audit] repository; operator actions are still recorded)"
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    const BASE: &str = r#"
[spool]
dir = "/var/lib/radroute"
[[destinations]]
name = "pacs"
ae_title = "PACS"
address = "127.0.0.1:4242"
[[routes]]
destinations = ["pacs"]
"#;

    fn problems(audit: &str) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("radroute.toml");
        std::fs::write(&path, format!("{BASE}[audit]\n{audit}")).expect("write");
        match crate::validated(&path) {
            Ok(cfg) => {
                assert!(cfg.audit.problems(&cfg).is_empty());
                Vec::new()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn off_by_default_and_plain_tcp_is_valid() {
        assert!(problems("").is_empty());
        assert!(problems("repository = \"audit.example.org:514\"").is_empty());
    }

    #[test]
    fn bad_repositories_and_tls_without_ca_are_refused() {
        let p = problems("repository = \"audit.example.org\"");
        assert!(p[0].contains("audit.repository"), "{p:?}");
        let p = problems("repository = \"audit.example.org:0\"");
        assert!(p[0].contains("1..=65535"), "{p:?}");
        let p = problems("repository = \"audit.example.org:6514\"\ntls = true");
        assert!(p[0].contains("audit.ca_file"), "{p:?}");
        let p = problems("repository = \"h:6514\"\ntls = true\nca_file = \"/nonexistent/ca.pem\"");
        assert!(p[0].contains("audit TLS"), "{p:?}");
        let p = problems("repository = \"h:6514\"\nqueue_capacity = 0");
        assert!(p[0].contains("queue_capacity"), "{p:?}");
    }
}

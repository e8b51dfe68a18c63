//! `[cluster]`: run this node as one of several sharing a PostgreSQL database
//! (docs/cluster.md). Absent: radroute is a single node (SQLite queue, local spool).
//!
//! The URL may be set by `RADROUTE__CLUSTER__POSTGRES`; a password may come from the URL, an
//! environment variable (`password_env`) or a file (`password_file`). It is never logged:
//! [`ClusterConfig`]'s `Debug` and [`ClusterConfig::redacted_url`] hide it.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[cluster]`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `postgresql://user@host:port/database` (env `RADROUTE__CLUSTER__POSTGRES`). Written
    /// back out (serialized) without its password.
    #[serde(serialize_with = "serialize_redacted")]
    pub postgres: String,
    /// This node's id, unique in the cluster and stable across restarts; empty: the host name.
    pub node_id: String,
    /// Environment variable holding the database password (when the URL has none).
    pub password_env: Option<String>,
    /// File whose first line is the database password (when the URL has none).
    #[serde(with = "crate::checks::strict_path::option")]
    pub password_file: Option<PathBuf>,
    /// A node whose heartbeat is older than this is dead: its leases are taken over (seconds).
    pub takeover_after_secs: u64,
    /// How often this node writes its heartbeat (seconds); well below `takeover_after_secs`.
    pub heartbeat_secs: u64,
    /// Connections this node opens to PostgreSQL at most.
    pub pool_size: usize,
    /// PEM file of the CA that signed the database server's certificate: set, the node talks
    /// TLS to PostgreSQL and verifies the server's certificate and host name against it.
    #[serde(with = "crate::checks::strict_path::option")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for PostgreSQL's `cert` authentication; with `key_file`.
    #[serde(with = "crate::checks::strict_path::option")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM); with `cert_file`.
    #[serde(with = "crate::checks::strict_path::option")]
    pub key_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            postgres: String::new(),
            node_id: String::new(),
            password_env: None,
            password_file: None,
            takeover_after_secs: 30,
            heartbeat_secs: 5,
            pool_size: 16,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("postgres", &self.redacted_url())
            .field("node_id", &self.node_id)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("takeover_after_secs", &self.takeover_after_secs)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl ClusterConfig {
    /// The node id: `node_id`, else the host name (`HOSTNAME`, then /etc/hostname).
    pub fn node_id(&self) -> String {
        let configured = self.node_id.trim();
        if !configured.is_empty() {
            return configured.to_string();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "radroute".to_string())
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        let url = &self.postgres;
        if let Some((scheme, rest)) = url.split_once("://") {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            if let Some((userinfo, host)) = authority.rsplit_once('@') {
                if let Some((user, _)) = userinfo.split_once(':') {
                    return format!("{scheme}://{user}:***@{host}{tail}");
                }
            }
            return url.clone();
        }
        "(not a postgresql:// URL)".to_string()
    }

    /// Problems with `[cluster]`, one per entry.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let url = self.postgres.trim();
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            problems.push(
                "cluster.postgres: a postgresql://user@host:port/database URL is required \
                 (or RADROUTE__CLUSTER__POSTGRES)"
                    .into(),
            );
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            problems.push("cluster: password_env and password_file are exclusive".into());
        }
        if self.node_id.len() > 64 || self.node_id.chars().any(|c| c.is_control()) {
            problems.push("cluster.node_id: at most 64 printable characters".into());
        }
        if !(5..=3600).contains(&self.takeover_after_secs) {
            problems.push("cluster.takeover_after_secs: 5 to 3600".into());
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs * 3 > self.takeover_after_secs {
            problems.push(format!(
                "cluster.heartbeat_secs: 1 to a third of takeover_after_secs ({})",
                self.takeover_after_secs
            ));
        }
        if !(2..=256).contains(&self.pool_size) {
            problems.push("cluster.pool_size: 2 to 256".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            problems.push("cluster: cert_file and key_file go together".into());
        }
        if self.cert_file.is_some() && self.ca_file.is_none() {
            problems.push("cluster.cert_file: needs ca_file (TLS)".into());
        }
        match (self.sslmode().as_deref(), &self.ca_file) {
            (Some("require" | "verify-ca" | "verify-full"), None) => problems.push(
                "cluster.postgres: sslmode requires TLS: set cluster.ca_file to the CA of the \
                 database server's certificate (radroute always verifies it)"
                    .into(),
            ),
            (Some("disable"), Some(_)) => problems
                .push("cluster.ca_file is set but the URL says sslmode=disable: remove one".into()),
            _ => {}
        }
        problems
    }

    /// The URL's `sslmode` parameter, lower-cased, if any.
    fn sslmode(&self) -> Option<String> {
        let (_, query) = self.postgres.split_once('?')?;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("sslmode")
                .then(|| v.trim().to_ascii_lowercase())
        })
    }

    /// The TLS client settings for PostgreSQL (`None`: no `ca_file`, plain TCP); paths are
    /// resolved against the configuration file's folder.
    pub fn tls_config(
        &self,
        cfg: &crate::Config,
    ) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        let Some(ca) = &self.ca_file else {
            return Ok(None);
        };
        let client = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((cfg.resolve(c), cfg.resolve(k))),
            _ => None,
        };
        crate::tls::client_config(
            &cfg.resolve(ca),
            client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .map(Some)
        .map_err(|e| format!("cluster TLS: {e}"))
    }
}

/// Serializes the URL without its password (a dump of the configuration must not leak it).
fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    let redacted = ClusterConfig {
        postgres: url.to_string(),
        ..ClusterConfig::default()
    }
    .redacted_url();
    s.serialize_str(&redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_never_shown() {
        let c = ClusterConfig {
            postgres: "postgresql://rr:s3cret@db:5432/radroute".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(c.redacted_url(), "postgresql://rr:***@db:5432/radroute");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn bad_values_are_refused() {
        let c = ClusterConfig {
            postgres: "db:5432".into(),
            takeover_after_secs: 6,
            heartbeat_secs: 5,
            password_env: Some("X".into()),
            password_file: Some("/x".into()),
            pool_size: 0,
            ..ClusterConfig::default()
        };
        let p = c.problems().join("\n");
        for needle in [
            "cluster.postgres",
            "exclusive",
            "heartbeat_secs",
            "pool_size",
        ] {
            assert!(p.contains(needle), "{needle} in {p}");
        }
    }

    #[test]
    fn sslmode_and_tls_files_must_agree() {
        let with = |url: &str, ca: Option<&str>| ClusterConfig {
            postgres: url.into(),
            ca_file: ca.map(PathBuf::from),
            ..ClusterConfig::default()
        };
        let p = with("postgresql://rr@db/x?sslmode=require", None).problems();
        assert!(p.iter().any(|p| p.contains("ca_file")), "{p:?}");
        let p = with("postgresql://rr@db/x?SSLMODE=disable", Some("/ca.pem")).problems();
        assert!(p.iter().any(|p| p.contains("sslmode=disable")), "{p:?}");
        assert!(
            with("postgresql://rr@db/x?sslmode=require", Some("/ca.pem"))
                .problems()
                .is_empty()
        );
        assert!(with("postgresql://rr@db/x", None).problems().is_empty());
        let half = ClusterConfig {
            cert_file: Some("/c.pem".into()),
            ..with("postgresql://rr@db/x", Some("/ca.pem"))
        };
        assert!(half.problems().iter().any(|p| p.contains("go together")));
    }

    #[test]
    fn node_id_defaults_to_the_host_name() {
        let c = ClusterConfig {
            node_id: " n1 ".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(c.node_id(), "n1");
        assert!(!ClusterConfig::default().node_id().is_empty());
    }
}

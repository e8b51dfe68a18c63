//! How to reach PostgreSQL: the URL, where the password comes from, the timeouts that keep
//! every call bounded, and the connection pool built from them.
//!
//! The password may sit in the URL, in an environment variable or in a file (a secret mounted by
//! systemd or Kubernetes); it is never logged: `Debug` and [`PgConfig::redacted_url`] replace it
//! with `***`, and tokio-postgres' errors never contain it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use radroute_queue::{QueueError, Result};
use tokio_postgres::NoTls;

/// Where the password comes from when the URL has none.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password (trust or peer authentication), or the one in the URL.
    None,
    /// The value of this environment variable.
    Env(String),
    /// The first line of this file.
    File(PathBuf),
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::None => f.write_str("None"),
            PasswordSource::Env(var) => write!(f, "Env({var:?})"),
            PasswordSource::File(path) => write!(f, "File({:?})", path.display()),
        }
    }
}

/// Connection settings of the cluster database.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgresql://user[:password]@host[:port]/database[?options]` or the key=value form.
    pub url: String,
    /// Where the password comes from when the URL has none.
    pub password: PasswordSource,
    /// Limit of a TCP connect plus authentication.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout` of every connection; calls give up shortly after it.
    pub statement_timeout: Duration,
    /// Most connections this process opens.
    pub pool_size: usize,
    /// TLS to the server, verified against the configured CA (`None`: plain TCP). The URL's
    /// `sslmode` still applies: `require` refuses a server without TLS, `prefer` (the default)
    /// falls back to plain TCP when the server offers none.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl PgConfig {
    /// Settings for `url` with the defaults: no separate password, connect 5 s, statements 10 s,
    /// 16 connections.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            password: PasswordSource::None,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            pool_size: 16,
            tls: None,
        }
    }

    /// The longest one queue call may take (waiting for a connection, then its statements)
    /// before it fails with `Unavailable`: the statement timeout plus a margin for the round
    /// trips around it.
    pub fn call_timeout(&self) -> Duration {
        self.statement_timeout + self.connect_timeout
    }

    /// The URL with its password replaced by `***`: what logs and errors show.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Parses the URL and resolves the password (read now from the environment or the file).
    pub fn driver_config(&self) -> Result<tokio_postgres::Config> {
        let mut cfg =
            tokio_postgres::Config::from_str(&self.url).map_err(|e| config_err(self, e))?;
        if cfg.get_password().is_none() {
            match &self.password {
                PasswordSource::None => {}
                PasswordSource::Env(var) => {
                    let value = std::env::var(var)
                        .map_err(|e| config_err(self, format!("password variable {var}: {e}")))?;
                    cfg.password(value);
                }
                PasswordSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        config_err(self, format!("password file {}: {e}", path.display()))
                    })?;
                    cfg.password(text.lines().next().unwrap_or_default());
                }
            }
        }
        cfg.connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("radroute")
            .options(format!(
                "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
                millis(self.statement_timeout),
                millis(self.statement_timeout),
                millis(self.call_timeout() * 2),
            ));
        Ok(cfg)
    }

    /// A connection pool. Connections open lazily (the first call), are checked before reuse
    /// (a closed one is replaced, so the pool reconnects by itself once PostgreSQL is back),
    /// and every wait is bounded by [`PgConfig::call_timeout`]. Must be called within a tokio
    /// runtime, whose tasks then drive the connections.
    pub fn pool(&self) -> Result<Pool> {
        let cfg = self.driver_config()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &self.tls {
            Some(tls) => Manager::from_config(
                cfg,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls.as_ref().clone()),
                manager_config,
            ),
            None => Manager::from_config(cfg, NoTls, manager_config),
        };
        let wait = Some(self.call_timeout());
        Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| config_err(self, e))
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("password", &self.password)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("pool_size", &self.pool_size)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl fmt::Display for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

fn config_err(cfg: &PgConfig, e: impl fmt::Display) -> QueueError {
    QueueError::Backend {
        op: "configure database",
        source: format!("{}: {e}", cfg.redacted_url()).into(),
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

/// Replaces the password of a URL (`scheme://user:PASSWORD@host`) or of a key=value string
/// (`password=PASSWORD`) with `***`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}{}", redact_query(tail));
            }
        }
        return format!("{scheme}://{authority}{}", redact_query(tail));
    }
    redact_query(url)
}

/// `password=...` (URL query or key=value form) to `password=***`.
fn redact_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.to_ascii_lowercase().find("password=") {
        let (before, after) = rest.split_at(pos + "password=".len());
        out.push_str(before);
        out.push_str("***");
        let end = after.find(['&', ' ']).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cfg = PgConfig::new("postgresql://rr:s3cret@db.example:5432/radroute?sslmode=disable");
        assert_eq!(
            cfg.redacted_url(),
            "postgresql://rr:***@db.example:5432/radroute?sslmode=disable"
        );
        for text in [format!("{cfg:?}"), cfg.to_string()] {
            assert!(!text.contains("s3cret"), "{text}");
        }
        assert_eq!(
            redact("postgresql://rr@db/x?password=s3cret&sslmode=disable"),
            "postgresql://rr@db/x?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db user=rr password=s3cret dbname=x"),
            "host=db user=rr password=*** dbname=x"
        );
        assert_eq!(redact("postgresql://rr@db/x"), "postgresql://rr@db/x");
    }

    #[test]
    fn password_from_env_or_file_when_the_url_has_none() {
        let dir = std::env::temp_dir().join(format!("radroute-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut cfg = PgConfig::new("postgresql://rr@127.0.0.1:1/x");
        cfg.password = PasswordSource::File(file.clone());
        assert_eq!(
            cfg.driver_config().unwrap().get_password(),
            Some(&b"from-file"[..])
        );
        std::env::set_var("RADROUTE_TEST_PG_PASSWORD", "from-env");
        cfg.password = PasswordSource::Env("RADROUTE_TEST_PG_PASSWORD".into());
        assert_eq!(
            cfg.driver_config().unwrap().get_password(),
            Some(&b"from-env"[..])
        );
        // The URL's own password wins.
        cfg.url = "postgresql://rr:in-url@127.0.0.1:1/x".into();
        assert_eq!(
            cfg.driver_config().unwrap().get_password(),
            Some(&b"in-url"[..])
        );
        cfg.url = "postgresql://rr@127.0.0.1:1/x".into();
        cfg.password = PasswordSource::File(dir.join("missing"));
        let err = cfg.driver_config().unwrap_err().to_string();
        assert!(err.contains("password file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

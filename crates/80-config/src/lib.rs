//! radroute's configuration: a TOML file read through the `config` crate, with environment
//! overrides (`RADROUTE__NODE__LISTEN=0.0.0.0:104` sets `node.listen`). `RADROUTE_CONFIG` names
//! the file. Every key is documented in docs/configuration.md.
//!
//! This crate is the only one that knows this format: it turns it into the option types of
//! the data-path crates ([`radroute_receive::ScpOptions`], [`radroute_forward::Destination`],
//! [`radroute_route::RuleSet`]). It sits below the node (radroute-node builds and rebuilds
//! the running node from a [`Config`]) and the binary (which loads it at start-up and on
//! SIGHUP), so neither reads TOML itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use radroute_route::{RouteConfig, RoutingOptions, RuleSet};
use serde::{Deserialize, Serialize};

pub mod audit;
mod checks;
pub mod cluster;
mod node_limits;
pub mod tls;

pub use audit::AuditConfig;

/// Default configuration file when neither `--config` nor `RADROUTE_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/radroute/radroute.toml";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or parsing the file (or an environment override) failed.
    #[error("cannot load configuration {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: config::ConfigError,
    },
    /// The values are inconsistent.
    #[error("invalid configuration {path}:\n{problems}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One problem per line.
        problems: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The DICOM node (SCP).
    #[serde(default)]
    pub node: NodeConfig,
    /// Where instances are kept.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// The forward queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The admin HTTP surface.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Body-part classification.
    #[serde(default)]
    pub classify: ClassifyConfig,
    /// DICOM audit messages (docs/audit.md).
    #[serde(default)]
    pub audit: AuditConfig,
    /// Cluster mode (docs/cluster.md): PostgreSQL holds all durable state. Absent: a single
    /// node on SQLite and the local spool.
    #[serde(default)]
    pub cluster: Option<cluster::ClusterConfig>,
    /// PACS destinations.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// Routing options (mode, fallback).
    #[serde(default)]
    pub routing: RoutingOptions,
    /// Routing rules.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The file this was read from (not a key).
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's AE title.
    pub ae_title: String,
    /// DICOM listen address.
    pub listen: String,
    /// Concurrent associations before A-ASSOCIATE-RJ.
    pub max_associations: usize,
    /// Concurrent associations per calling AE title (0: unlimited).
    pub max_associations_per_ae: usize,
    /// Maximum PDU length received.
    pub max_pdu: u32,
    /// Reject associations whose called AE title is not `ae_title`.
    pub require_called_ae_title: bool,
    /// Abort associations idle this long (seconds).
    pub idle_timeout_secs: u64,
    /// Storage SOP class UIDs accepted; empty = the built-in radiology list.
    pub sop_classes: Vec<String>,
    /// Transfer syntax UIDs accepted; empty = every syntax radroute decodes.
    pub transfer_syntaxes: Vec<String>,
    /// Allowed calling AE titles (`"AE"` or `"AE@ip"`); empty = everyone.
    pub allow: Vec<String>,
    /// Refuse new stores with A700 when the spool's file system has less free space (MiB).
    pub min_free_mb: u64,
    /// The longest a C-STORE waits for storage (spool file and queue row, or the cluster's
    /// transaction) before it is refused with A700 (seconds): a hung disk must not hold
    /// associations for ever.
    pub store_timeout_secs: u64,
    /// Instances waiting for processing beyond which C-STORE responses are held back (flow
    /// control; 0: no limit).
    pub max_unprocessed: usize,
    /// The PS3.8 ARTIM timer: seconds a connection has for the whole negotiation (TLS
    /// handshake included) before it is closed.
    pub artim_timeout_secs: u64,
    /// Connections negotiating at once (they hold no association slot); past it, new
    /// connections are closed at once.
    pub max_negotiating: usize,
    /// Largest data set accepted (MiB); a larger one aborts its association.
    pub max_instance_mb: usize,
    /// Memory for data sets being received, shared by all associations (MiB).
    pub receive_memory_mb: usize,
    /// DICOM TLS on the SCP; when set, only TLS associations are accepted.
    pub tls: Option<NodeTls>,
}

/// `[node.tls]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTls {
    /// PEM certificate chain of this node.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate it signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            ae_title: "RADROUTE".into(),
            listen: "0.0.0.0:11112".into(),
            max_associations: 32,
            max_associations_per_ae: 0,
            max_pdu: 65_536,
            require_called_ae_title: false,
            idle_timeout_secs: 120,
            sop_classes: Vec::new(),
            transfer_syntaxes: Vec::new(),
            allow: Vec::new(),
            min_free_mb: 512,
            store_timeout_secs: 60,
            max_unprocessed: 16,
            artim_timeout_secs: 10,
            max_negotiating: 64,
            max_instance_mb: 256,
            receive_memory_mb: 384,
            tls: None,
        }
    }
}

/// `[spool]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool directory (instances, and the queue database unless `queue.path` is set).
    #[serde(with = "checks::strict_path")]
    pub dir: PathBuf,
    /// Keep files this long after every destination has them, or every job still missing was
    /// dropped by an operator, or no route sent the instance anywhere (seconds).
    pub retention_secs: u64,
    /// Keep the files of a dead letter (refused, or out of attempts) this long after it died,
    /// so an operator can still retry it; then they are purged and a retry is refused (seconds).
    pub dead_letter_retention_secs: u64,
    /// Received instances kept parsed in memory for the processing step (MiB), so it need not
    /// read them back from disk; 0 turns the handoff off. The files are written either way.
    pub handoff_mb: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("/var/lib/radroute"),
            retention_secs: 0,
            dead_letter_retention_secs: 7 * 24 * 3600,
            handoff_mb: 96,
        }
    }
}

/// `[queue]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// SQLite database file; default `<spool.dir>/queue.sqlite`.
    #[serde(with = "checks::strict_path::option")]
    pub path: Option<PathBuf>,
    /// Attempts per job before it becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay (seconds); doubles per attempt.
    pub backoff_base_secs: f64,
    /// Longest retry delay (seconds).
    pub backoff_max_secs: f64,
    /// Instances sent per association.
    pub batch_size: usize,
    /// A forward lease older than this is stale (its worker died or lost the outcome) and the
    /// running node queues the job again (seconds; 0: derived from the destinations' timeouts
    /// and `batch_size`).
    pub stale_lease_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            path: None,
            max_attempts: 10,
            backoff_base_secs: 5.0,
            backoff_max_secs: 600.0,
            batch_size: 32,
            stale_lease_secs: 0,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// HTTP listen address (loopback by default); empty disables the admin surface.
    pub listen: String,
    /// Bearer token (`RADROUTE__ADMIN__TOKEN`): when set and not empty, every admin endpoint
    /// except `/healthz` requires `Authorization: Bearer <token>`. Never serialized back out.
    #[serde(skip_serializing)]
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".into(),
            token: None,
        }
    }
}

/// `[classify]`: the body-part model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifyConfig {
    /// Model directory (manifest.toml + ONNX files); relative paths are relative to the
    /// configuration file. Unset: no classification, instances are routed unlabelled.
    #[serde(with = "checks::strict_path::option")]
    pub model: Option<PathBuf>,
    /// The ONNX Runtime shared library; default: `ORT_DYLIB_PATH`, then a `.venv` next to the
    /// working directory or the executable.
    pub onnxruntime: Option<PathBuf>,
    /// `auto` (CUDA when present, else CPU), `cpu` or `cuda`.
    #[serde(with = "device_serde")]
    pub device: radroute_classify::Device,
    /// Intra-op threads of each session.
    pub threads: usize,
    /// Largest inference batch (images arriving close together across associations).
    pub max_batch: usize,
    /// Longest an image waits for others to join its batch (milliseconds).
    pub max_wait_ms: u64,
    /// Processing steps (decode, classify, coerce, route) run at the same time.
    pub workers: usize,
    /// An existing Body Part Examined: `never` overwritten, overwritten `if-empty`, `correct`ed
    /// when it names another region and the model is confident (default), `always`.
    #[serde(with = "overwrite_serde")]
    pub overwrite: radroute_coerce::Overwrite,
    /// Modalities classified (empty: all).
    pub modalities: Vec<String>,
    /// SOP classes classified (empty: all).
    pub sop_classes: Vec<String>,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        let policy = radroute_coerce::CoercionPolicy::default();
        ClassifyConfig {
            model: None,
            onnxruntime: None,
            device: radroute_classify::Device::Auto,
            threads: 2,
            max_batch: 8,
            max_wait_ms: 10,
            workers: 2,
            overwrite: policy.overwrite,
            modalities: policy.modalities,
            sop_classes: policy.sop_classes,
        }
    }
}

mod device_serde {
    use radroute_classify::Device;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match d {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        })
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        match String::deserialize(d)?.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(serde::de::Error::custom(format!(
                "device {other:?}: expected auto, cpu or cuda"
            ))),
        }
    }
}

mod overwrite_serde {
    use radroute_coerce::Overwrite;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(o: &Overwrite, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(o.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Overwrite, D::Error> {
        Overwrite::deserialize(d)
    }
}

/// `[[destinations]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Name used by routes.
    pub name: String,
    /// Called AE title.
    pub ae_title: String,
    /// host:port.
    pub address: String,
    /// Calling AE title presented to it; default `node.ae_title`.
    #[serde(default)]
    pub calling_ae_title: Option<String>,
    /// Connect timeout (seconds).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Per-exchange timeout (seconds).
    #[serde(default = "default_io_timeout")]
    pub io_timeout_secs: u64,
    /// DICOM TLS: PEM CA certificates to trust; setting it turns TLS on for this destination.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Name expected in the destination's certificate; default: the host part of `address`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// PEM client certificate presented to the destination (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM client key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Associations open to this destination at once, each sending its own batches.
    #[serde(default = "default_associations")]
    pub associations: usize,
    /// An idle association stays open this long for more instances (milliseconds; 0 releases
    /// it after every batch).
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
}

fn default_associations() -> usize {
    2
}
fn default_linger_ms() -> u64 {
    2000
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_io_timeout() -> u64 {
    60
}

impl Config {
    /// The model directory, resolved against the configuration file's directory.
    pub fn model_dir(&self) -> Option<PathBuf> {
        self.classify.model.as_deref().map(|m| self.resolve(m))
    }

    /// The queue database path.
    pub fn queue_path(&self) -> PathBuf {
        self.queue
            .path
            .clone()
            .unwrap_or_else(|| self.spool.dir.join("queue.sqlite"))
    }

    /// The retry policy for the queue.
    pub fn retry_policy(&self) -> radroute_queue::RetryPolicy {
        radroute_queue::RetryPolicy {
            // `problems` refuses what does not convert; never panic on what it let through.
            base: Duration::try_from_secs_f64(self.queue.backoff_base_secs).unwrap_or_default(),
            max: Duration::try_from_secs_f64(self.queue.backoff_max_secs).unwrap_or_default(),
            max_attempts: self.queue.max_attempts.max(1),
        }
    }

    /// A path from the configuration, resolved against the configuration file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        self.source
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(path)
    }

    /// Destinations in the forward crate's terms (TLS files are read here).
    pub fn destinations(&self) -> Result<Vec<radroute_forward::Destination>, String> {
        self.destinations
            .iter()
            .map(|d| {
                let mut dest = radroute_forward::Destination::new(
                    &d.name,
                    &d.ae_title,
                    &d.address,
                    d.calling_ae_title.as_deref().unwrap_or(&self.node.ae_title),
                );
                dest.connect_timeout = Duration::from_secs(d.connect_timeout_secs);
                dest.io_timeout = Duration::from_secs(d.io_timeout_secs);
                if d.associations == 0 {
                    return Err(format!(
                        "destinations ({}): associations must be at least 1",
                        d.name
                    ));
                }
                dest.associations = d.associations;
                dest.linger = Duration::from_millis(d.linger_ms);
                if let Some(ca) = &d.tls_ca {
                    let (cert, key) = (d.tls_cert.as_deref(), d.tls_key.as_deref());
                    let client = match (cert, key) {
                        (Some(c), Some(k)) => Some((self.resolve(c), self.resolve(k))),
                        (None, None) => None,
                        _ => {
                            return Err(format!(
                                "destinations ({}): tls_cert and tls_key go together",
                                d.name
                            ))
                        }
                    };
                    let config = crate::tls::client_config(
                        &self.resolve(ca),
                        client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                    )
                    .map_err(|e| format!("destinations ({}): {e}", d.name))?;
                    let server_name = d.tls_server_name.clone().unwrap_or_else(|| {
                        d.address
                            .rsplit_once(':')
                            .map(|(h, _)| h.to_string())
                            .unwrap_or_default()
                    });
                    dest.tls = Some(radroute_forward::ClientTls {
                        config,
                        server_name,
                    });
                }
                Ok(dest)
            })
            .collect()
    }

    /// The SCP options.
    pub fn scp_options(&self) -> Result<radroute_receive::ScpOptions, String> {
        use radroute_receive::options::{DEFAULT_SOP_CLASSES, DEFAULT_TRANSFER_SYNTAXES};
        let mut opts = radroute_receive::ScpOptions {
            ae_title: self.node.ae_title.clone(),
            require_called_ae_title: self.node.require_called_ae_title,
            max_associations: self.node.max_associations,
            max_associations_per_ae: self.node.max_associations_per_ae,
            max_pdu: self.node.max_pdu,
            idle_timeout: Duration::from_secs(self.node.idle_timeout_secs.max(1)),
            artim_timeout: Duration::from_secs(self.node.artim_timeout_secs),
            max_negotiating: self.node.max_negotiating,
            max_instance_bytes: self.node.max_instance_mb.saturating_mul(1 << 20),
            receive_memory_bytes: self.node.receive_memory_mb.saturating_mul(1 << 20),
            ..Default::default()
        };
        if !self.node.sop_classes.is_empty() {
            opts.sop_classes = self.node.sop_classes.clone();
        }
        if !self.node.transfer_syntaxes.is_empty() {
            let known: Vec<&str> = DEFAULT_TRANSFER_SYNTAXES
                .iter()
                .map(|(uid, _)| *uid)
                .collect();
            for ts in &self.node.transfer_syntaxes {
                if !known.contains(&ts.as_str()) {
                    return Err(format!(
                        "node.transfer_syntaxes: {ts} is not a syntax radroute can decode"
                    ));
                }
            }
            opts.transfer_syntaxes = self.node.transfer_syntaxes.clone();
        }
        let _ = DEFAULT_SOP_CLASSES;
        if let Some(tls) = &self.node.tls {
            opts.tls = Some(
                crate::tls::server_config(
                    &self.resolve(&tls.cert),
                    &self.resolve(&tls.key),
                    tls.client_ca.as_deref().map(|p| self.resolve(p)).as_deref(),
                )
                .map_err(|e| format!("node.tls: {e}"))?,
            );
        }
        for entry in &self.node.allow {
            let (ae, addr) = match entry.split_once('@') {
                Some((ae, ip)) => (
                    ae,
                    Some(ip.parse().map_err(|_| {
                        format!("node.allow: {entry:?}: {ip:?} is not an IP address")
                    })?),
                ),
                None => (entry.as_str(), None),
            };
            opts.access.allowed.push(radroute_receive::AllowedPeer {
                ae_title: ae.to_string(),
                address: addr,
            });
        }
        Ok(opts)
    }

    /// Compiles the routing rules against the configured destinations.
    pub fn rules(&self) -> Result<RuleSet, String> {
        let names: Vec<String> = self.destinations.iter().map(|d| d.name.clone()).collect();
        RuleSet::compile(&self.routes, &self.routing, &names).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Every problem with the configuration, one per entry; empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.node.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "node.listen: {:?} is not an address:port",
                self.node.listen
            ));
        }
        if self.node.ae_title.trim().is_empty() || self.node.ae_title.len() > 16 {
            problems.push("node.ae_title: 1 to 16 characters".into());
        }
        problems.extend(self.node.limit_problems());
        if let Err(e) = self.scp_options() {
            problems.push(e);
        }
        problems.extend(checks::max_pdu(self.node.max_pdu));
        if let Ok(addr) = self.node.listen.parse::<SocketAddr>() {
            if addr.port() == 0 {
                problems.push("node.listen: port 0 is not a port a modality can reach".into());
            }
        }
        problems.extend(checks::backoff_secs(
            "backoff_base_secs",
            self.queue.backoff_base_secs,
        ));
        problems.extend(checks::backoff_secs(
            "backoff_max_secs",
            self.queue.backoff_max_secs,
        ));
        if !self.admin.listen.is_empty() && self.admin.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "admin.listen: {:?} is not an address:port",
                self.admin.listen
            ));
        }
        problems.extend(checks::admin_exposed(
            &self.admin.listen,
            self.admin.token.as_deref(),
        ));
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            if !seen.insert(d.name.clone()) {
                problems.push(format!("destinations[{i}]: duplicate name {:?}", d.name));
            }
            if d.ae_title.trim().is_empty() || d.ae_title.len() > 16 {
                problems.push(format!(
                    "destinations[{i}] ({}): ae_title must be 1 to 16 characters",
                    d.name
                ));
            }
            if let Err(e) = checks::port_of(&d.address) {
                problems.push(format!(
                    "destinations[{i}] ({}): address must be host:port with a port in 1..=65535: {e}",
                    d.name
                ));
            }
        }
        if let Err(e) = self.destinations() {
            problems.push(e);
        }
        if let Err(e) = self.rules() {
            problems.push(format!("routes:\n{e}"));
        }
        problems.extend(self.audit.problems(self));
        if let Some(cluster) = &self.cluster {
            problems.extend(cluster.problems());
            if let Err(e) = cluster.tls_config(self) {
                problems.push(e);
            }
        }
        if let Some(dir) = self.model_dir() {
            match radroute_classify::Manifest::load(&dir) {
                Ok(manifest) => {
                    if let Err(e) = manifest.validate() {
                        problems.push(format!("classify.model: {}: {e}", dir.display()));
                    }
                }
                Err(e) => problems.push(format!("classify.model: {e}")),
            }
        }
        problems
    }

    /// One line saying whether classification is on, with which model (name, version, folder)
    /// and for which modalities.
    pub fn classification_summary(&self) -> String {
        match self.model_dir() {
            None => {
                "classification: off (no [classify] model: images are routed unlabelled)".into()
            }
            Some(dir) => match radroute_classify::Manifest::load(&dir) {
                Ok(m) => format!(
                    "classification: on, model {} {} ({}), modalities {}, overwrite {:?}",
                    m.name,
                    m.version,
                    dir.display(),
                    self.classify.modalities.join(","),
                    self.classify.overwrite
                ),
                Err(e) => format!("classification: on, model {}: {e}", dir.display()),
            },
        }
    }

    /// What is legal but almost certainly not meant, one line each: routes on labels the
    /// configured model never gives. `check-config` prints these and `serve` logs them; neither
    /// refuses the file.
    pub fn warnings(&self) -> Vec<String> {
        let Ok(rules) = self.rules() else {
            return Vec::new();
        };
        let labels: Option<Vec<String>> = match self.model_dir() {
            None => None,
            Some(dir) => match radroute_classify::Manifest::load(&dir) {
                Ok(m) => Some(m.classes.into_iter().map(|c| c.body_part).collect()),
                // An unreadable manifest is a problem already.
                Err(_) => return Vec::new(),
            },
        };
        checks::label_warnings(&rules, labels.as_deref())
    }
}

/// Resolves which file to read: the flag, else `RADROUTE_CONFIG`, else the default path.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("RADROUTE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Reads and validates the configuration (file plus `RADROUTE__*` overrides) and logs its
/// [`Config::warnings`].
pub fn load(flag: Option<&Path>) -> Result<Config, ConfigError> {
    let cfg = validated(&resolve_path(flag))?;
    for warning in cfg.warnings() {
        tracing::warn!(file = %cfg.source.display(), "configuration: {warning}");
    }
    Ok(cfg)
}

/// Reads and validates the configuration: the one validation path of `serve`, reloads and
/// `check-config`.
fn validated(path: &Path) -> Result<Config, ConfigError> {
    let path = path.to_path_buf();
    let mut cfg = read(&path)?;
    cfg.source = path.clone();
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            path,
            problems: problems.join("\n"),
        });
    }
    Ok(cfg)
}

fn read(path: &Path) -> Result<Config, ConfigError> {
    let load_err = |source| ConfigError::Load {
        path: path.to_path_buf(),
        source,
    };
    config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("RADROUTE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(load_err)?
        .try_deserialize()
        .map_err(load_err)
}

/// `radroute check-config FILE`: prints a summary or every problem.
pub fn check(path: &Path) -> Result<(), String> {
    let cfg = validated(path).map_err(|e| e.to_string())?;
    println!("{}: OK", path.display());
    for warning in cfg.warnings() {
        println!("  warning: {warning}");
    }
    println!(
        "  node {} listening on {}, {} associations max",
        cfg.node.ae_title, cfg.node.listen, cfg.node.max_associations
    );
    println!(
        "  spool {}, queue {}",
        cfg.spool.dir.display(),
        cfg.queue_path().display()
    );
    for d in &cfg.destinations {
        println!("  destination {}: {}@{}", d.name, d.ae_title, d.address);
    }
    println!(
        "  {} route(s), mode {:?}, fallback {:?}",
        cfg.routes.len(),
        cfg.routing.mode,
        cfg.routing.fallback
    );
    println!("  {}", cfg.classification_summary());
    println!("  {}", cfg.audit.summary());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("radroute.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    const ISSUE_EXAMPLE: &str = r#"
[node]
ae_title = "RADROUTE"
listen = "0.0.0.0:11112"
max_associations = 32
[spool]
dir = "/var/lib/radroute"
[admin]
listen = "127.0.0.1:8080"
[[destinations]]
name = "pacs"
ae_title = "ORTHANC"
address = "127.0.0.1:4242"
[[routes]]
destinations = ["pacs"]
"#;

    #[test]
    fn the_documented_minimal_config_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = load(Some(&write(dir.path(), ISSUE_EXAMPLE))).expect("valid");
        assert_eq!(cfg.node.ae_title, "RADROUTE");
        assert_eq!(cfg.destinations[0].name, "pacs");
        assert_eq!(
            cfg.queue_path(),
            PathBuf::from("/var/lib/radroute/queue.sqlite")
        );
        cfg.rules().expect("rules compile");
    }

    #[test]
    fn unknown_destination_in_a_route_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = ISSUE_EXAMPLE.replace(
            r#"destinations = ["pacs"]"#,
            r#"destinations = ["nowhere"]"#,
        );
        let err = load(Some(&write(dir.path(), &text))).expect_err("invalid");
        assert!(err.to_string().contains("nowhere"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = ISSUE_EXAMPLE.replace("max_associations = 32", "max_asociations = 32");
        let err = load(Some(&write(dir.path(), &text))).expect_err("typo");
        assert!(err.to_string().contains("max_asociations"), "{err}");
    }
}

//! The command line: `serve`, `check-config`, `queue`, `classify`, `eval`, `migrate`, `cluster`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// radroute: receive, label and route radiographs.
#[derive(Debug, Parser)]
#[command(name = "radroute", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the DICOM node (SCP, processing, forwarding, admin HTTP).
    Serve {
        /// Configuration file (TOML); default: $RADROUTE_CONFIG, else /etc/radroute/radroute.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file, rules included, and print what it means.
    CheckConfig {
        /// The file to check (or `--config FILE`, as for serve and queue).
        file: Option<PathBuf>,
        /// Configuration file; default: $RADROUTE_CONFIG, else /etc/radroute/radroute.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Classify DICOM, PNG and JPEG files (and folders) with the body-part model.
    Classify(crate::cmd_classify::ClassifyArgs),
    /// Measure the model on a folder holding one sub-folder per class.
    Eval(crate::cmd_eval::EvalArgs),
    /// Inspect and repair the forward queue.
    Queue {
        /// Configuration file (to find the queue database).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do with the queue.
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Cluster mode: apply the PostgreSQL schema migrations (nodes also apply them at start).
    Migrate {
        /// Configuration file (its `[cluster]` section).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Cluster mode: the nodes, their heartbeats and leases, the queue depth.
    Cluster {
        /// Configuration file (its `[cluster]` section).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to show.
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// The file `check-config` checks: the positional file or `--config` (the same one if both are
/// given), else what `serve` would read.
pub fn check_config_path(
    file: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<PathBuf, String> {
    match (file, config) {
        (Some(f), Some(c)) if f != c => Err(format!(
            "check-config: two different files given ({} and --config {}); give one",
            f.display(),
            c.display()
        )),
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => Ok(radroute_config::resolve_path(None)),
    }
}

/// `radroute cluster` actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Nodes (state, last heartbeat, leases held, instances not routed yet) and queue depth.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `radroute queue` actions.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Counts of instances and jobs by state, per destination.
    Counts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List jobs.
    List {
        /// Only jobs in this state (queued, in_flight, delivered, dead).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs for this destination.
        #[arg(long)]
        destination: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Put dead-letter jobs back in the queue (all, or one destination's, or one job).
    Retry {
        /// Only this job.
        #[arg(long)]
        job: Option<i64>,
        /// Only this destination's dead letters.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Give up on a job (it becomes a dead letter marked as dropped by the operator).
    Drop {
        /// The job.
        job: i64,
    },
}

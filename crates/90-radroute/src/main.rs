//! radroute: a DICOM router for radiographs. It receives instances as a DICOM node (C-STORE),
//! spools them durably, labels the body part with an ONNX model, writes the label into the
//! header and forwards each instance by routing rules to PACS destinations.
//!
//! This binary is thin: the CLI ([`cli`]), loading the configuration (radroute-config),
//! start-up ([`serve`]: the node of radroute-node with the admin surface of radroute-admin
//! beside it, and the signals) and the operator commands. The data path and its wiring live in
//! the `radroute-*` crates; see docs/ARCHITECTURE.md.

mod cli;
mod cmd_classify;
mod cmd_cluster;
mod cmd_eval;
mod cmd_queue;
mod logging;
mod malloc;
mod serve;

use radroute_config as config;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    malloc::limit_arenas();
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, cli.verbose);
    let result = match cli.command {
        cli::Command::Classify(args) => {
            return crate::cmd_classify::run(&args).unwrap_or_else(|e| {
                eprintln!("radroute classify: {e}");
                ExitCode::FAILURE
            })
        }
        cli::Command::Eval(args) => {
            return crate::cmd_eval::run(&args).unwrap_or_else(|e| {
                eprintln!("radroute eval: {e}");
                ExitCode::FAILURE
            })
        }
        cli::Command::Serve { config } => config::load(config.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|cfg| serve::run(cfg).map_err(|e| e.to_string())),
        cli::Command::CheckConfig { file, config } => {
            cli::check_config_path(file, config).and_then(|path| config::check(&path))
        }
        cli::Command::Queue { config, action } => config::load(config.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|cfg| cmd_queue::run(&cfg, action).map_err(|e| e.to_string())),
        cli::Command::Migrate { config } => config::load(config.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|cfg| cmd_cluster::migrate(&cfg)),
        cli::Command::Cluster { config, action } => config::load(config.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|cfg| cmd_cluster::run(&cfg, action)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("radroute: {message}");
            ExitCode::FAILURE
        }
    }
}

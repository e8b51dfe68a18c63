//! Logging through tracing: human-readable by default, JSON lines with `--log-format json`.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the level chosen by `-v`.
pub fn init(format: LogFormat, verbose: u8) {
    // jpeg2k (OpenJPEG) logs every tile header at info: keep it to warnings.
    let default = match verbose {
        0 => "info,jpeg2k=warn",
        1 => "debug,jpeg2k=warn",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

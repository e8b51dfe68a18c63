//! Logging through tracing: human-readable by default, JSON lines with `--log-format json`.
//! Colour only on a terminal, and never when `NO_COLOR` is set (https://no-color.org): logs
//! that go to files or journald carry no escape codes.

use std::io::IsTerminal;

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
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Whether to colour: on a terminal, unless `NO_COLOR` is set to anything non-empty.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}

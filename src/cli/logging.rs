//! Logs go to stderr, so stdout carries only JSON data.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use ct_relay::config::{LogFormat, LogSettings};

/// `serve` logs at the configured level; other commands only warnings, unless
/// RUST_LOG says otherwise.
pub fn init(settings: &LogSettings, daemon: bool) -> anyhow::Result<()> {
    let default = if daemon {
        settings.level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .map_err(|e| anyhow::anyhow!("log.level `{}`: {e}", settings.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.format {
        // One flat object a line: `{"timestamp","level","message","event",
        // "qid",…,"target"}` (docs/OPERATIONS.md, "Logs").
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        // Colour only for a person at a terminal, never in a file or journal.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    Ok(())
}

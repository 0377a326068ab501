//! Log output: text or one JSON object per line on stderr, filtered by
//! `RUST_LOG`-style directives. The filter can be changed while running
//! (SIGHUP with a new `log_level`); the format is fixed at start.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// Environment variables that win over the configuration, so an operator can
/// raise the level of one run without editing the file.
pub const LEVEL_ENV: &str = "FLOWLINK_LOG";
pub const FORMAT_ENV: &str = "FLOWLINK_LOG_FORMAT";

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The format and level to use: the environment's, else `config`'s.
pub fn effective(config: &LogConfig) -> LogConfig {
    let format = match std::env::var(FORMAT_ENV).as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ => config.format,
    };
    let level = std::env::var(LEVEL_ENV).unwrap_or_else(|_| config.level.clone());
    LogConfig { format, level }
}

/// Installs the process's subscriber; later calls change nothing.
pub fn init(config: &LogConfig) {
    let config = effective(config);
    let filter = EnvFilter::builder()
        .parse(&config.level)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        // Fields flattened beside `message`, no span list: stable names a log
        // shipper can index (`level`, `target`, `consumer`, …).
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Applies a reloaded `log_level` unless the environment pins one. Returns
/// whether the filter changed.
pub fn set_level(level: &str) -> Result<bool, String> {
    if std::env::var_os(LEVEL_ENV).is_some() {
        return Ok(false);
    }
    let Some(handle) = FILTER.get() else {
        return Ok(false);
    };
    let filter = EnvFilter::builder()
        .parse(level)
        .map_err(|e| format!("{level:?} is not a log filter: {e}"))?;
    let changed = handle
        .with_current(|current| current.to_string() != filter.to_string())
        .unwrap_or(true);
    if changed {
        handle.reload(filter).map_err(|e| e.to_string())?;
    }
    Ok(changed)
}

//! The YAML configuration: FlowLink's keys plus flowlink's own, flat beside
//! them. Loading checks everything it can without touching the network and
//! reports every problem with its key path and the file.

mod api_key;
mod describe;
mod model;
mod suggest;
mod validate;

use std::path::{Path, PathBuf};

pub use api_key::ApiKey;
pub use describe::describe;
pub use model::*;

/// Every problem found in one configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.file, .problems))]
pub struct ConfigError {
    pub file: PathBuf,
    /// `(key path, message)`, e.g. `("consumers[0].parser.type", "…")`.
    pub problems: Vec<(String, String)>,
}

fn render(file: &Path, problems: &[(String, String)]) -> String {
    let mut out = format!("invalid configuration {}:", file.display());
    for (path, message) in problems {
        if path.is_empty() {
            out.push_str(&format!("\n  - {message}"));
        } else {
            out.push_str(&format!("\n  - {path}: {message}"));
        }
    }
    out
}

impl ConfigError {
    pub fn one(file: &Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            problems: vec![(path.into(), message.into())],
        }
    }
}

/// Reads, parses and validates `file`. Relative paths inside it are taken
/// relative to the file's own directory, so a config works from any cwd.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::one(file, "", format!("cannot read the file: {e}")))?;
    parse(&text, file)
}

pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| {
        let (path, message) = split_serde_path(&e.to_string());
        ConfigError::one(file, path, suggest::with_suggestion(&message))
    })?;
    let base = file.parent().map(Path::to_owned).unwrap_or_default();
    validate::resolve(raw, file, &base)
}

/// serde_yaml_ng reports "consumers[0].parser: unknown field `x`, …": split the
/// key path from the message so errors read the same as our own checks.
fn split_serde_path(message: &str) -> (String, String) {
    if let Some((path, rest)) = message.split_once(": ") {
        let looks_like_path = !path.contains(' ') && !path.is_empty();
        if looks_like_path {
            return (path.to_owned(), rest.to_owned());
        }
    }
    (String::new(), message.to_owned())
}

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

/// The JSON Schema of the configuration file, as committed in
/// `flowlink_config_schema.json`: generated from the types serde reads, so
/// it cannot drift from what the daemon accepts (a test checks the file).
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(RawConfig);
    schema.insert("title".to_owned(), "flowlink configuration".into());
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "pce_addr: https://pce.example.com:8443\norg_id: 1\napi_key: { key: k, secret: s }\n";

    fn consumers(yaml: &str) -> String {
        format!("{BASE}consumers:\n{yaml}")
    }

    fn problems(text: &str) -> Vec<(String, String)> {
        parse(text, Path::new("/etc/flowlink/flowlink.yaml"))
            .expect_err("invalid")
            .problems
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let text = format!(
            "{BASE}queue_max_mb: 0\nparser_workers: 999\nconsumers:\n  - name: a\n    connectors: [{{ type: file, properties: {{ path: x.log, max_message_bytes: 0 }} }}]\n    parser: {{ type: \"\" }}\n"
        );
        let paths: Vec<String> = problems(&text).into_iter().map(|(p, _)| p).collect();
        for want in [
            "queue_max_mb",
            "parser_workers",
            "consumers[0].connectors[0].properties.max_message_bytes",
            "consumers[0].parser.type",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "{want} missing in {paths:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_names_the_likely_one() {
        let text = format!("{BASE}queue_capacty: 10\nconsumers: []\n");
        let all = problems(&text);
        let message = &all[0].1;
        assert!(message.contains("queue_capacity"), "{message}");
    }

    #[test]
    fn defaults_and_limits_are_described_once() {
        let text = consumers(
            "  - name: a\n    connectors: [{ type: udp, properties: { ports: \"2055\" } }]\n    parser: { type: netflow, timeout_ms: 40 }\n",
        );
        let config = parse(&text, Path::new("/etc/flowlink/flowlink.yaml")).unwrap();
        assert_eq!(config.queue_max_bytes, 64 << 20);
        let limits = config.consumers[0].parser.limits;
        assert_eq!(limits.call_timeout, std::time::Duration::from_millis(40));
        assert_eq!(limits.memory_bytes, ParserLimits::default().memory_bytes);
        assert_eq!(
            limits.max_flows_per_message,
            ParserLimits::DEFAULT_MAX_FLOWS_PER_MESSAGE as usize
        );
    }

    #[test]
    fn relative_paths_are_taken_from_the_file_s_folder() {
        let text = format!(
            "{BASE}data_directory: data\nconsumers:\n  - name: a\n    connectors: [{{ type: udp, properties: {{ ports: \"2055\" }} }}]\n    parser: {{ type: netflow }}\n"
        );
        let config = parse(&text, Path::new("/etc/flowlink/flowlink.yaml")).unwrap();
        assert_eq!(config.data_directory, Path::new("/etc/flowlink/data"));
    }
}

//! The YAML of a daemon under test, built from its parts so every test
//! states only what it is about.

use std::path::{Path, PathBuf};

use super::Emulator;
use super::process::{EMULATOR_KEY, EMULATOR_SECRET};

pub struct DaemonConfig {
    pce_addr: String,
    secret: String,
    window_seconds: u64,
    consumer: String,
    parser: String,
    connectors: Vec<String>,
    plugin_dir: PathBuf,
    plugin_cache_dir: Option<PathBuf>,
    metrics: Option<String>,
    extra: Vec<String>,
    parser_settings: Vec<String>,
    relay: Option<String>,
}

impl DaemonConfig {
    /// One consumer `name` parsing with `parser`, uploading to `emulator`:
    /// 1-second windows, spool retries every second, `data_directory` in
    /// `data/` beside the config file.
    pub fn new(emulator: &Emulator, name: &str, parser: &str) -> Self {
        DaemonConfig {
            pce_addr: emulator.url.clone(),
            secret: EMULATOR_SECRET.to_owned(),
            window_seconds: 1,
            consumer: name.to_owned(),
            parser: parser.to_owned(),
            connectors: Vec::new(),
            plugin_dir: super::plugin_dir(),
            plugin_cache_dir: None,
            metrics: None,
            extra: Vec::new(),
            parser_settings: Vec::new(),
            relay: None,
        }
    }

    /// The consumer relays (`relay:` instead of `parser:`), as a YAML flow
    /// mapping (`{ type: kafka, properties: {...} }`).
    pub fn relay(mut self, yaml: &str) -> Self {
        self.relay = Some(yaml.to_owned());
        self
    }

    pub fn udp(mut self, port: u16) -> Self {
        self.connectors.push(format!(
            "{{ type: udp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1 }} }}"
        ));
        self
    }

    pub fn tcp_ipfix(mut self, port: u16) -> Self {
        self.connectors.push(format!(
            "{{ type: tcp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1, framing: ipfix }} }}"
        ));
        self
    }

    /// A file tail of `path` from its beginning.
    pub fn file_tail(self, path: &Path) -> Self {
        self.connector(&format!(
            "{{ type: file, properties: {{ path: \"{}\", start_position: beginning }} }}",
            path.display()
        ))
    }

    /// Any connector, as a YAML flow mapping (`{ type: file, properties: {...} }`).
    pub fn connector(mut self, yaml: &str) -> Self {
        self.connectors.push(yaml.to_owned());
        self
    }

    pub fn window_seconds(mut self, seconds: u64) -> Self {
        self.window_seconds = seconds;
        self
    }

    /// Serve Prometheus metrics on `addr` (`127.0.0.1:PORT`).
    pub fn metrics(mut self, addr: &str) -> Self {
        self.metrics = Some(addr.to_owned());
        self
    }

    pub fn plugin_dir(mut self, dir: &Path) -> Self {
        self.plugin_dir = dir.to_owned();
        self
    }

    /// Where compiled plugins are kept; the test binary's shared cache
    /// otherwise.
    pub fn plugin_cache_dir(mut self, dir: &Path) -> Self {
        self.plugin_cache_dir = Some(dir.to_owned());
        self
    }

    pub fn pce_addr(mut self, addr: &str) -> Self {
        self.pce_addr = addr.to_owned();
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.to_owned();
        self
    }

    /// Any other top-level setting, as a YAML line (`"org_id: 7"`).
    pub fn with(mut self, line: &str) -> Self {
        self.extra.push(line.to_owned());
        self
    }

    /// A setting of the consumer's parser, as a YAML line (`"timeout_ms: 300"`).
    pub fn parser_with(mut self, line: &str) -> Self {
        self.parser_settings.push(line.to_owned());
        self
    }

    pub fn yaml(&self) -> String {
        assert!(
            !self.connectors.is_empty(),
            "a connector: call udp(), tcp_ipfix() or connector()"
        );
        let metrics = self
            .metrics
            .as_ref()
            .map(|m| format!("metrics_listen: {m}\n"))
            .unwrap_or_default();
        let extra: String = self.extra.iter().map(|l| format!("{l}\n")).collect();
        let parser: String = self
            .parser_settings
            .iter()
            .map(|l| format!("      {l}\n"))
            .collect();
        let decoding = match &self.relay {
            Some(relay) => format!("    relay: {relay}\n"),
            None => format!("    parser:\n      type: {}\n{parser}", self.parser),
        };
        format!(
            "pce_addr: {pce}\napi_key:\n  key: {EMULATOR_KEY}\n  secret: {secret}\naggregation_seconds: {window}\n\
             spool_retry_seconds: 1\ndata_directory: data\nplugin_dir: {plugins}\nplugin_cache_dir: {cache}\n{metrics}{extra}\
             consumers:\n  - name: {name}\n    connectors:\n      - {connector}\n{decoding}",
            pce = self.pce_addr,
            secret = self.secret,
            window = self.window_seconds,
            plugins = self.plugin_dir.display(),
            cache = self
                .plugin_cache_dir
                .clone()
                .unwrap_or_else(super::shared_plugin_cache)
                .display(),
            name = self.consumer,
            connector = self.connectors.join("\n      - "),
        )
    }
}

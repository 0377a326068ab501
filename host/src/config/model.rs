//! Configuration types: `Raw*` mirror the YAML (serde), the rest is the
//! validated form the daemon uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::api_key::{ApiKey, RawApiKey};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub pce_addr: String,
    pub org_id: Option<u32>,
    pub api_key: RawApiKey,
    pub aggregation_minutes: Option<u64>,
    pub aggregation_seconds: Option<u64>,
    pub data_directory: Option<PathBuf>,
    pub data_directory_size_mb: Option<u64>,
    /// Overrides `data_directory_size_mb` below its 100 MB floor: small
    /// devices, and tests of the size bound.
    pub data_directory_size_kb: Option<u64>,
    /// How the aggregator recognises replies; see docs/aggregation.md.
    pub direction_inference: Option<DirectionRule>,
    /// Ports (besides the built-in list) that are services, for the rule.
    pub direction_service_ports: Option<Vec<u16>>,
    pub file_retention_hours: Option<u64>,
    pub metrics_print_seconds: Option<u64>,
    pub consumers: Option<Vec<RawConsumer>>,
    /// FlowLink's name for `consumers`; one of the two.
    pub destinations: Option<Vec<RawConsumer>>,

    pub plugin_dir: Option<PathBuf>,
    pub plugin_cache_dir: Option<PathBuf>,
    pub upload_format: Option<UploadFormat>,
    pub pce_ca_file: Option<PathBuf>,
    pub pce_insecure: Option<bool>,
    pub metrics_listen: Option<SocketAddr>,
    pub spool_retry_seconds: Option<u64>,
    pub plugin_timeout_ms: Option<u64>,
    pub plugin_memory_mb: Option<u64>,
    pub plugin_max_flows_per_message: Option<usize>,
    pub parser_workers: Option<usize>,
    pub queue_capacity: Option<usize>,
    /// Bytes waiting for the parsers, and parsed flows waiting for the
    /// aggregator: each bounded by this many MiB.
    pub queue_max_mb: Option<u64>,
    /// Keep the messages that made a plugin fault in
    /// `data_directory/quarantine/`, up to this many MiB (oldest dropped
    /// first); 0 (the default) keeps none.
    pub quarantine_mb: Option<u64>,
    pub aggregation_max_keys: Option<usize>,
    /// How often parser state (templates) is snapshotted when it changed.
    pub state_snapshot_seconds: Option<u64>,
    /// How often open windows are written to disk when they changed.
    pub checkpoint_seconds: Option<u64>,
    /// How long a stop waits for the PCE before spooling the last windows.
    pub shutdown_upload_seconds: Option<u64>,
    /// `text` (default) or `json`: one JSON object per line.
    pub log_format: Option<LogFormat>,
    /// Which events are logged, as `RUST_LOG` directives: `info` (default),
    /// `debug`, `warn,flowlink::uploader=debug`. `FLOWLINK_LOG` overrides it.
    pub log_level: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub name: String,
    pub connectors: Option<Vec<ConnectorSpec>>,
    /// FlowLink's form: one connector, a mapping. One of the two.
    pub connector: Option<ConnectorSpec>,
    /// How its messages are decoded. One of `parser` and `relay`.
    pub parser: Option<RawParser>,
    /// Decode nothing: hand every message on, raw, to a Kafka topic that
    /// outlet daemons consume (docs/scale-out.md).
    pub relay: Option<RelaySpec>,
}

/// `relay:` of a consumer: where its raw messages go.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    content = "properties",
    rename_all = "lowercase",
    deny_unknown_fields
)]
pub enum RelaySpec {
    Kafka(KafkaRelayProperties),
}

/// A Kafka topic a relay produces to: each message keyed by its exporter's
/// address, so one exporter's datagrams (and its templates) stay on one
/// partition, hence with one outlet.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct KafkaRelayProperties {
    /// Bootstrap brokers, `host:port`.
    pub brokers: StringList,
    pub topic: String,
    /// Messages held in memory for the broker (the producer's queue), MiB;
    /// default 64. Past it, messages wait on disk.
    pub memory_max_mb: Option<u64>,
    /// Messages kept on disk while the broker is away or slow
    /// (`data_directory/relay/<consumer>/`), MiB; default 1024, at least 4
    /// (one segment). Past it the oldest are dropped and counted.
    pub disk_max_mb: Option<u64>,
    /// Any other key is a librdkafka producer property, passed as is
    /// (`compression.type`, `linger.ms`, TLS, SASL, …) and checked by
    /// librdkafka when the configuration is.
    #[serde(flatten)]
    pub producer: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A pass-through librdkafka property's value as librdkafka takes it:
/// strings as they are, numbers and booleans as written.
pub fn librdkafka_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParser {
    /// The plugin's name (its `info().name`).
    #[serde(rename = "type")]
    pub plugin: String,
    pub properties: Option<serde_json::Value>,
    /// Per-consumer overrides of the global sandbox limits.
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_flows_per_message: Option<usize>,
    /// Pins the plugin build: the SHA-256 (hex) of its `.wasm` file. Any
    /// other build of the plugin is refused, at start, on reload and on a
    /// hot swap (`sha256sum plugin.wasm` or `flowlink plugin check` print it).
    pub sha256: Option<String>,
    /// When to stop calling a plugin that keeps faulting.
    pub circuit_breaker: Option<RawCircuitBreaker>,
}

/// `parser.circuit_breaker`: more than `faults` plugin faults in the last
/// `messages` messages stop calls for a backoff (1 s, doubling).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Default 20.
    pub faults: Option<u64>,
    /// Default 50.
    pub messages: Option<u64>,
    /// The longest pause between trials, seconds; default 60.
    pub max_backoff_seconds: Option<u64>,
}

/// A connector: `{type: udp, properties: {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    content = "properties",
    rename_all = "lowercase",
    deny_unknown_fields
)]
pub enum ConnectorSpec {
    Udp(UdpProperties),
    Tcp(TcpProperties),
    File(FileProperties),
    Kafka(KafkaProperties),
    /// CloudWatch Logs (FlowLink calls the connector `aws`).
    Aws(AwsProperties),
}

/// Where a source without a resume point starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    Beginning,
    /// Only what arrives after the first start.
    #[default]
    End,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileProperties {
    /// The file to tail; relative to the config file's directory.
    pub path: PathBuf,
    /// For a file with no checkpoint yet; default `end`.
    pub start_position: Option<StartPosition>,
    /// Longest line; longer ones are discarded and counted. Default 64 KiB.
    pub max_message_bytes: Option<usize>,
}

/// `"a,b"` or `[a, b]`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StringList {
    Text(String),
    List(Vec<String>),
}

impl StringList {
    pub fn items(&self) -> Vec<String> {
        match self {
            StringList::Text(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            StringList::List(list) => list
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStartOffset {
    Earliest,
    Latest,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaProperties {
    /// Bootstrap brokers, `host:port`.
    pub brokers: StringList,
    pub topics: Option<StringList>,
    /// A regular expression of topic names (librdkafka's `^` subscription).
    pub topic_pattern: Option<String>,
    /// Default `flowlink`.
    pub group_id: Option<String>,
    /// For a group without committed offsets; default `latest`.
    pub start_offset: Option<KafkaStartOffset>,
    /// Passed to librdkafka as is (TLS, SASL, timeouts, ...).
    pub properties: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// A compacted topic where the members of the group share parser state
    /// (templates): a member that takes over a partition restores it before
    /// decoding, so it does not wait for the exporters' next template
    /// refresh. For outlets behind a relay (docs/scale-out.md).
    pub state_topic: Option<String>,
    /// When a message's offset is committed: `checkpoint` (default), once
    /// the window holding its records is on this machine's disk; `upload`,
    /// once the window is at the PCE (or spooled). With `upload`, a member
    /// that dies with its disk loses nothing: its window's messages go again
    /// to the member that takes its partitions.
    pub commit: Option<KafkaCommit>,
}

/// `kafka.commit`: what a committed offset promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCommit {
    /// The records are in a window checkpoint on this machine's disk.
    #[default]
    Checkpoint,
    /// The records' window is uploaded or spooled; windows are not
    /// checkpointed (the topic is their copy).
    Upload,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsProperties {
    pub region: String,
    pub log_group: String,
    pub log_stream_prefix: Option<String>,
    pub log_streams: Option<Vec<String>>,
    /// CloudWatch filter pattern; events that do not match are not fetched.
    pub filter_pattern: Option<String>,
    /// Default 10.
    pub poll_seconds: Option<u64>,
    /// For streams present at the first start; default `end`. Streams that
    /// appear later are read from their beginning.
    pub start_position: Option<StartPosition>,
    /// A named profile of the shared AWS config files.
    pub profile: Option<String>,
    /// A role to assume with the chain's credentials.
    pub role_arn: Option<String>,
    /// Another endpoint (a VPC endpoint, a test server).
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpProperties {
    pub ports: PortList,
    /// Address to bind, IPv4 or IPv6; default `0.0.0.0`.
    pub listen_address: Option<std::net::IpAddr>,
    /// How messages are delimited in the byte stream; default `syslog`.
    pub framing: Option<TcpFraming>,
    /// Concurrent connections; more are refused and logged. Default 256.
    pub max_connections: Option<usize>,
    /// Longest text record (line or octet-counted frame); longer ones are
    /// discarded and counted. Default 64 KiB.
    pub max_message_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TcpFraming {
    /// IPFIX messages back to back, each sized by its header's length field.
    Ipfix,
    /// Text records, one per line (RFC 6587 non-transparent framing).
    Newline,
    /// Text records as `LEN SP MSG` (RFC 6587 octet counting).
    OctetCounting,
    /// Either, decided per record: `LEN SP <` starts an octet-counted
    /// record, anything else is a line.
    Syslog,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UdpProperties {
    /// FlowLink writes ports as a string, `"2055"` or `"2055,9995"`.
    pub ports: PortList,
    /// Address to bind, IPv4 or IPv6; default `0.0.0.0`.
    pub listen_address: Option<std::net::IpAddr>,
    /// SO_RCVBUF to ask for; default 8 MiB.
    pub receive_buffer_bytes: Option<usize>,
}

/// `2055`, `"2055,9995"` or `[2055, 9995]`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortList {
    One(u16),
    Text(String),
    List(Vec<u16>),
}

impl PortList {
    pub fn ports(&self) -> Result<Vec<u16>, String> {
        let ports = match self {
            PortList::One(p) => vec![*p],
            PortList::List(list) => list.clone(),
            PortList::Text(text) => text
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u16>()
                        .map_err(|_| format!("{:?} is not a port number", p.trim()))
                })
                .collect::<Result<_, _>>()?,
        };
        if ports.is_empty() {
            return Err("no ports given".to_owned());
        }
        if let Some(zero) = ports.iter().find(|p| **p == 0) {
            return Err(format!("port {zero} is not usable"));
        }
        Ok(ports)
    }
}

/// Which records the aggregator folds into the opposite direction's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionRule {
    /// TCP flags where they decide, else ICMP echo replies and the lower
    /// port as the service.
    #[default]
    Auto,
    /// Ports (and ICMP echo) only; TCP flags ignored.
    Ports,
    /// Every record keyed as reported.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadFormat {
    /// Protobuf first; a 404 or 415 switches to `bulk_csv` for the rest of
    /// the run (a stock PCE serves only the Bulk Traffic Loader).
    #[default]
    Auto,
    /// `flowlink.v1.FlowBatch`: the emulator, or a receiver of your own.
    Protobuf,
    /// Illumio's Bulk Traffic Loader, what a stock PCE takes.
    BulkCsv,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields (`consumer`, …) at the top level.
    Json,
}

/// Logging, as configured; `FLOWLINK_LOG` and `FLOWLINK_LOG_FORMAT` override it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `RUST_LOG`-style directives, checked to parse.
    pub level: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub pce: PceConfig,
    pub window: Duration,
    pub data_directory: PathBuf,
    /// The spool's size bound, from `data_directory_size_mb` (or `_kb`).
    pub spool_max_bytes: u64,
    pub file_retention: Duration,
    pub metrics_print: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub spool_retry: Duration,
    pub direction: DirectionRule,
    pub direction_service_ports: Vec<u16>,
    /// Plugins that add to or override the built-in ones (by name), and the
    /// folder watched for hot swap; `None`: the built-in plugins only.
    pub plugin_dir: Option<PathBuf>,
    pub plugin_cache_dir: PathBuf,
    pub parser_workers: usize,
    pub queue_capacity: usize,
    /// Bound in bytes of each of the two queues between stages.
    pub queue_max_bytes: usize,
    /// Bound of `data_directory/quarantine/`; 0: off.
    pub quarantine_max_bytes: u64,
    pub aggregation_max_keys: usize,
    pub state_snapshot: Duration,
    pub checkpoint: Duration,
    pub shutdown_upload: Duration,
    pub log: LogConfig,
    pub consumers: Vec<ConsumerConfig>,
    /// Consumers with `relay:` instead of `parser:`.
    pub relays: Vec<RelayConfig>,
}

/// A consumer that relays raw messages instead of parsing them.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    pub name: String,
    pub connectors: Vec<ConnectorSpec>,
    pub kafka: KafkaRelayProperties,
    pub memory_max_bytes: u64,
    pub disk_max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct PceConfig {
    /// Scheme, host and port; paths are appended per endpoint.
    pub base_url: reqwest::Url,
    pub org_id: u32,
    pub api_key: ApiKey,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub upload_format: UploadFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub name: String,
    pub connectors: Vec<ConnectorSpec>,
    pub parser: ParserSpec,
}

impl ConsumerConfig {
    /// Whether its windows are checkpointed: not when its source keeps
    /// every record until the window is uploaded (`kafka.commit: upload`).
    pub fn checkpoints_windows(&self) -> bool {
        !self
            .connectors
            .iter()
            .any(|c| matches!(c, ConnectorSpec::Kafka(k) if k.commit == Some(KafkaCommit::Upload)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParserSpec {
    pub plugin: String,
    /// `parser.properties` as a JSON object, as the plugin receives it.
    pub properties_json: String,
    pub limits: ParserLimits,
    /// `parser.sha256`, lower-case hex: the only build this consumer runs.
    pub sha256: Option<String>,
    pub breaker: BreakerSettings,
}

/// A parser's circuit breaker (`parser.circuit_breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Open past this many faults…
    pub faults: usize,
    /// …among the last this many messages.
    pub messages: usize,
    pub max_backoff: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            faults: 20,
            messages: 50,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// A parser's sandbox limits, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Wall-clock budget of one call into the plugin.
    pub call_timeout: Duration,
    /// Linear memory the plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// More flow records than this from one message and the message is refused.
    pub max_flows_per_message: usize,
}

impl ParserLimits {
    pub const DEFAULT_TIMEOUT_MS: u64 = 250;
    pub const DEFAULT_MEMORY_MB: u64 = 64;
    pub const DEFAULT_MAX_FLOWS_PER_MESSAGE: u64 = 65_536;
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            call_timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            memory_bytes: (Self::DEFAULT_MEMORY_MB as usize) << 20,
            max_flows_per_message: Self::DEFAULT_MAX_FLOWS_PER_MESSAGE as usize,
        }
    }
}

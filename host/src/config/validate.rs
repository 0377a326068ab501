//! Range checks and defaults. Collects every problem instead of stopping at
//! the first, so an operator fixes a config in one pass.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::ConfigError;
use super::api_key::ApiKey;
use super::model::*;

struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// `value` within `[min, max]`, else a problem naming the key; returns the value or `default`.
    fn ranged(&mut self, key: &str, value: Option<u64>, min: u64, max: u64, default: u64) -> u64 {
        match value {
            Some(v) if !(min..=max).contains(&v) => {
                self.add(key, format!("must be between {min} and {max}, got {v}"));
                default
            }
            Some(v) => v,
            None => default,
        }
    }
}

pub(super) fn resolve(raw: RawConfig, file: &Path, base: &Path) -> Result<Config, ConfigError> {
    let mut p = Problems(Vec::new());

    let base_url = match pce_base_url(&raw.pce_addr) {
        Ok(url) => Some(url),
        Err(e) => {
            p.add("pce_addr", e);
            None
        }
    };
    let api_key = match ApiKey::resolve(raw.api_key, base) {
        Ok(key) => Some(key),
        Err(e) => {
            p.add("api_key", e);
            None
        }
    };

    let minutes = p.ranged("aggregation_minutes", raw.aggregation_minutes, 5, 60, 10);
    let window_secs = match raw.aggregation_seconds {
        Some(_) => p.ranged("aggregation_seconds", raw.aggregation_seconds, 1, 3600, 60),
        None => minutes * 60,
    };
    let data_directory_size_mb = p.ranged(
        "data_directory_size_mb",
        raw.data_directory_size_mb,
        100,
        1 << 20,
        500,
    );
    let spool_max_bytes = match raw.data_directory_size_kb {
        Some(_) => {
            p.ranged(
                "data_directory_size_kb",
                raw.data_directory_size_kb,
                1,
                1 << 30,
                0,
            ) << 10
        }
        None => data_directory_size_mb << 20,
    };
    let file_retention_hours = p.ranged(
        "file_retention_hours",
        raw.file_retention_hours,
        4,
        24 * 365,
        24,
    );
    let metrics_print_seconds = p.ranged(
        "metrics_print_seconds",
        raw.metrics_print_seconds,
        15,
        86_400,
        60,
    );
    let spool_retry_seconds = p.ranged("spool_retry_seconds", raw.spool_retry_seconds, 1, 3600, 30);
    let default_limits = ParserLimits {
        call_timeout: Duration::from_millis(p.ranged(
            "plugin_timeout_ms",
            raw.plugin_timeout_ms,
            1,
            60_000,
            ParserLimits::DEFAULT_TIMEOUT_MS,
        )),
        memory_bytes: (p.ranged(
            "plugin_memory_mb",
            raw.plugin_memory_mb,
            2,
            4096,
            ParserLimits::DEFAULT_MEMORY_MB,
        ) as usize)
            << 20,
        max_flows_per_message: p.ranged(
            "plugin_max_flows_per_message",
            raw.plugin_max_flows_per_message.map(|v| v as u64),
            1,
            10_000_000,
            ParserLimits::DEFAULT_MAX_FLOWS_PER_MESSAGE,
        ) as usize,
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let parser_workers = p.ranged(
        "parser_workers",
        raw.parser_workers.map(|v| v as u64),
        1,
        256,
        cpus as u64,
    ) as usize;
    let queue_capacity = p.ranged(
        "queue_capacity",
        raw.queue_capacity.map(|v| v as u64),
        16,
        1 << 24,
        8192,
    ) as usize;
    let queue_max_bytes = (p.ranged("queue_max_mb", raw.queue_max_mb, 1, 4095, 64) << 20) as usize;
    let quarantine_max_bytes = p.ranged("quarantine_mb", raw.quarantine_mb, 0, 1 << 20, 0) << 20;
    let aggregation_max_keys = p.ranged(
        "aggregation_max_keys",
        raw.aggregation_max_keys.map(|v| v as u64),
        1000,
        100_000_000,
        1_000_000,
    ) as usize;

    let state_snapshot_seconds = p.ranged(
        "state_snapshot_seconds",
        raw.state_snapshot_seconds,
        1,
        3600,
        10,
    );
    let checkpoint_seconds = p.ranged("checkpoint_seconds", raw.checkpoint_seconds, 1, 3600, 10);
    let shutdown_upload_seconds = p.ranged(
        "shutdown_upload_seconds",
        raw.shutdown_upload_seconds,
        1,
        600,
        5,
    );
    let (section, raw_consumers) = match (raw.consumers, raw.destinations) {
        (Some(list), None) => ("consumers", list),
        (None, Some(list)) => ("destinations", list),
        (Some(list), Some(_)) => {
            p.add(
                "destinations",
                "`consumers` and `destinations` are the same list (FlowLink calls it \
                 `destinations`): use one",
            );
            ("consumers", list)
        }
        (None, None) => ("consumers", Vec::new()),
    };
    if raw_consumers.is_empty() {
        p.add(
            section,
            "at least one consumer is needed (`consumers:` or FlowLink's `destinations:`)",
        );
    }
    let mut names = HashSet::new();
    let mut ports_in_use = HashSet::new();
    let mut consumers = Vec::new();
    let mut relays = Vec::new();
    for (i, consumer) in raw_consumers.into_iter().enumerate() {
        let at = format!("{section}[{i}]");
        let name_chars = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if consumer.name.trim().is_empty() {
            p.add(format!("{at}.name"), "must not be empty");
        } else if !consumer.name.chars().all(name_chars) || consumer.name.chars().all(|c| c == '.')
        {
            // It names log fields, metric labels and batches.
            p.add(
                format!("{at}.name"),
                format!(
                    "{:?}: use letters, digits, '-', '_' and '.' only",
                    consumer.name
                ),
            );
        } else if !names.insert(consumer.name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("{:?} is used by another consumer", consumer.name),
            );
        }
        let single = consumer.connector.is_some() && consumer.connectors.is_none();
        let mut connectors = match (consumer.connectors, consumer.connector) {
            (Some(list), None) => list,
            (None, Some(one)) => vec![one],
            (Some(list), Some(_)) => {
                p.add(
                    at.clone(),
                    "has both `connector` and `connectors`: use `connector:` for one \
                     connector or `connectors:` for a list",
                );
                list
            }
            (None, None) => Vec::new(),
        };
        if connectors.is_empty() {
            p.add(
                format!("{at}.connectors"),
                "at least one connector is needed (`connector:` or `connectors:`)",
            );
        }
        for (j, connector) in connectors.iter_mut().enumerate() {
            let at_props = if single {
                format!("{at}.connector.properties")
            } else {
                format!("{at}.connectors[{j}].properties")
            };
            let (transport, ports, max_connections) = match connector {
                ConnectorSpec::Udp(udp) => ("UDP", &udp.ports, None),
                ConnectorSpec::Tcp(tcp) => ("TCP", &tcp.ports, tcp.max_connections),
                ConnectorSpec::File(file) => {
                    file.path = base.join(&file.path);
                    check_file(&mut p, &at_props, file);
                    continue;
                }
                ConnectorSpec::Kafka(kafka) => {
                    check_kafka(&mut p, &at_props, kafka);
                    continue;
                }
                ConnectorSpec::Aws(aws) => {
                    check_aws(&mut p, &at_props, aws);
                    continue;
                }
            };
            match ports.ports() {
                Ok(ports) => {
                    for port in ports {
                        if !ports_in_use.insert((transport, port)) {
                            p.add(
                                format!("{at_props}.ports"),
                                format!("{transport} port {port} is configured twice"),
                            );
                        }
                    }
                }
                Err(e) => p.add(format!("{at_props}.ports"), e),
            }
            if max_connections == Some(0) {
                p.add(format!("{at_props}.max_connections"), "must be at least 1");
            }
        }
        let parser = match (consumer.parser, consumer.relay) {
            (Some(parser), None) => parser,
            (None, Some(RelaySpec::Kafka(kafka))) => {
                relays.push(resolve_relay(&mut p, &at, consumer.name, connectors, kafka));
                continue;
            }
            (Some(_), Some(_)) => {
                p.add(
                    at,
                    "has both `parser` and `relay`: a consumer either parses its messages \
                     or relays them raw",
                );
                continue;
            }
            (None, None) => {
                p.add(
                    format!("{at}.parser"),
                    "missing: a consumer needs `parser:` (or `relay:` to hand its messages \
                     on to Kafka unparsed)",
                );
                continue;
            }
        };
        check_commit(&mut p, &at, &connectors);
        if parser.plugin.trim().is_empty() {
            p.add(format!("{at}.parser.type"), "must name a parser plugin");
        }
        let properties = parser.properties.unwrap_or_else(|| serde_json::json!({}));
        if !properties.is_object() {
            p.add(format!("{at}.parser.properties"), "must be a mapping");
        }
        let limits = ParserLimits {
            call_timeout: parser.timeout_ms.map_or(default_limits.call_timeout, |ms| {
                Duration::from_millis(p.ranged(
                    &format!("{at}.parser.timeout_ms"),
                    Some(ms),
                    1,
                    60_000,
                    ParserLimits::DEFAULT_TIMEOUT_MS,
                ))
            }),
            memory_bytes: parser.memory_mb.map_or(default_limits.memory_bytes, |mb| {
                let mb = p.ranged(
                    &format!("{at}.parser.memory_mb"),
                    Some(mb),
                    2,
                    4096,
                    ParserLimits::DEFAULT_MEMORY_MB,
                );
                (mb as usize) << 20
            }),
            max_flows_per_message: parser.max_flows_per_message.map_or(
                default_limits.max_flows_per_message,
                |n| {
                    p.ranged(
                        &format!("{at}.parser.max_flows_per_message"),
                        Some(n as u64),
                        1,
                        10_000_000,
                        ParserLimits::DEFAULT_MAX_FLOWS_PER_MESSAGE,
                    ) as usize
                },
            ),
        };
        let sha256 = parser.sha256.map(|pin| pin.trim().to_ascii_lowercase());
        if let Some(pin) = &sha256
            && (pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            p.add(
                format!("{at}.parser.sha256"),
                format!("{pin:?} is not a SHA-256 digest (64 hex digits)"),
            );
        }
        let defaults = BreakerSettings::default();
        let breaker = match &parser.circuit_breaker {
            None => defaults,
            Some(raw) => {
                let at = format!("{at}.parser.circuit_breaker");
                let messages = p.ranged(
                    &format!("{at}.messages"),
                    raw.messages,
                    1,
                    100_000,
                    defaults.messages as u64,
                );
                BreakerSettings {
                    messages: messages as usize,
                    // Below `messages` unless set: equal to it turns the breaker off.
                    faults: p.ranged(
                        &format!("{at}.faults"),
                        raw.faults,
                        0,
                        messages,
                        (defaults.faults as u64).min(messages - 1),
                    ) as usize,
                    max_backoff: Duration::from_secs(p.ranged(
                        &format!("{at}.max_backoff_seconds"),
                        raw.max_backoff_seconds,
                        1,
                        86_400,
                        defaults.max_backoff.as_secs(),
                    )),
                }
            }
        };
        consumers.push(ConsumerConfig {
            name: consumer.name,
            connectors,
            parser: ParserSpec {
                plugin: parser.plugin,
                properties_json: properties.to_string(),
                limits,
                sha256,
                breaker,
            },
        });
    }

    let log_level = raw.log_level.clone().unwrap_or_else(|| "info".to_owned());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
        p.add(
            "log_level",
            format!("{log_level:?} is not a log filter: {e}"),
        );
    }

    if let Some(ca) = &raw.pce_ca_file
        && !base.join(ca).is_file()
    {
        p.add(
            "pce_ca_file",
            format!("{} is not a readable file", base.join(ca).display()),
        );
    }

    if !p.0.is_empty() {
        return Err(ConfigError {
            file: file.to_owned(),
            problems: p.0,
        });
    }
    let data_directory = base.join(raw.data_directory.unwrap_or_else(|| "flowlink-data".into()));
    Ok(Config {
        file: file.to_owned(),
        pce: PceConfig {
            base_url: base_url.expect("checked above"),
            org_id: raw.org_id.unwrap_or(1),
            api_key: api_key.expect("checked above"),
            ca_file: raw.pce_ca_file.map(|ca| base.join(ca)),
            insecure: raw.pce_insecure.unwrap_or(false),
            upload_format: raw.upload_format.unwrap_or_default(),
        },
        window: Duration::from_secs(window_secs),
        spool_max_bytes,
        file_retention: Duration::from_secs(file_retention_hours * 3600),
        direction: raw.direction_inference.unwrap_or_default(),
        direction_service_ports: raw.direction_service_ports.unwrap_or_default(),
        metrics_print: Duration::from_secs(metrics_print_seconds),
        metrics_listen: raw.metrics_listen,
        spool_retry: Duration::from_secs(spool_retry_seconds),
        plugin_dir: raw.plugin_dir.map(|dir| base.join(dir)),
        plugin_cache_dir: raw
            .plugin_cache_dir
            .map_or_else(|| data_directory.join("plugin-cache"), |dir| base.join(dir)),
        data_directory,
        parser_workers,
        queue_capacity,
        queue_max_bytes,
        quarantine_max_bytes,
        aggregation_max_keys,
        state_snapshot: Duration::from_secs(state_snapshot_seconds),
        checkpoint: Duration::from_secs(checkpoint_seconds),
        shutdown_upload: Duration::from_secs(shutdown_upload_seconds),
        log: LogConfig {
            format: raw.log_format.unwrap_or_default(),
            level: log_level,
        },
        consumers,
        relays,
    })
}

/// `kafka.commit: upload` turns the consumer's window checkpoints off, so
/// every connector of the consumer must be able to replay its window.
fn check_commit(p: &mut Problems, at: &str, connectors: &[ConnectorSpec]) {
    let upload = |c: &ConnectorSpec| matches!(c, ConnectorSpec::Kafka(k) if k.commit == Some(KafkaCommit::Upload));
    if connectors.iter().any(upload) && !connectors.iter().all(upload) {
        p.add(
            format!("{at}.connectors"),
            "`commit: upload` turns this consumer's window checkpoints off, so all its \
             connectors must be Kafka connectors with `commit: upload` (the others \
             could not replay what a crash loses)",
        );
    }
}

fn resolve_relay(
    p: &mut Problems,
    at: &str,
    name: String,
    connectors: Vec<ConnectorSpec>,
    kafka: KafkaRelayProperties,
) -> RelayConfig {
    let props = format!("{at}.relay.properties");
    if kafka.brokers.items().is_empty() {
        p.add(format!("{props}.brokers"), "needs at least one host:port");
    }
    if kafka.topic.trim().is_empty() {
        p.add(format!("{props}.topic"), "must name a topic");
    }
    for (key, value) in &kafka.producer {
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            p.add(
                format!("{props}.{key}"),
                "must be a string, number or boolean (a librdkafka producer property)",
            );
        }
        if matches!(
            key.as_str(),
            "bootstrap.servers" | "queue.buffering.max.kbytes" | "enable.idempotence"
        ) {
            p.add(
                format!("{props}.{key}"),
                "is set by flowlink (brokers, memory_max_mb; the producer is always idempotent)",
            );
        }
        if let Some(why) = idempotence_conflict(key, value) {
            p.add(format!("{props}.{key}"), why);
        }
    }
    let memory_mb = p.ranged(
        &format!("{props}.memory_max_mb"),
        kafka.memory_max_mb,
        1,
        1 << 16,
        64,
    );
    check_librdkafka(
        p,
        &props,
        &kafka.producer,
        &["brokers", "topic", "memory_max_mb", "disk_max_mb"],
    );
    // The buffer writes segments of up to 4 MiB and drops whole ones: a
    // smaller bound could not be kept.
    let disk_mb = p.ranged(
        &format!("{props}.disk_max_mb"),
        kafka.disk_max_mb,
        4,
        1 << 24,
        1024,
    );
    for (j, connector) in connectors.iter().enumerate() {
        if let ConnectorSpec::Kafka(k) = connector
            && (k.state_topic.is_some() || k.commit.is_some())
        {
            p.add(
                format!("{at}.connectors[{j}].properties"),
                "`state_topic` and `commit` are for consumers that parse; a relay's \
                 offsets move once the broker it relays to has the messages",
            );
        }
    }
    RelayConfig {
        name,
        connectors,
        kafka,
        memory_max_bytes: memory_mb << 20,
        disk_max_bytes: disk_mb << 20,
    }
}

/// What librdkafka refuses beside `enable.idempotence` (the relay's
/// producer is idempotent), which only creating the producer would show.
fn idempotence_conflict(key: &str, value: &serde_json::Value) -> Option<&'static str> {
    let value = librdkafka_value(value);
    let number = value.parse::<i64>().ok();
    let refused = match key {
        "acks" | "request.required.acks" => !matches!(value.as_str(), "all" | "-1"),
        "max.in.flight.requests.per.connection" | "max.in.flight" => number.is_some_and(|n| n > 5),
        "retries" | "message.send.max.retries" => number == Some(0),
        "queuing.strategy" => value != "fifo",
        _ => false,
    };
    refused.then_some(
        "conflicts with the relay's idempotent producer (librdkafka needs acks all, at most 5 \
         requests in flight, retries and fifo queuing with enable.idempotence)",
    )
}

fn check_file(p: &mut Problems, at: &str, file: &FileProperties) {
    if file.path.as_os_str().is_empty() || file.path.is_dir() {
        p.add(
            format!("{at}.path"),
            format!("{} is not a file path", file.path.display()),
        );
    }
    if file.max_message_bytes == Some(0) {
        p.add(format!("{at}.max_message_bytes"), "must be at least 1");
    }
}

fn check_kafka(p: &mut Problems, at: &str, kafka: &KafkaProperties) {
    if kafka.brokers.items().is_empty() {
        p.add(format!("{at}.brokers"), "needs at least one host:port");
    }
    let topics = kafka.topics.as_ref().map(StringList::items);
    match (&topics, &kafka.topic_pattern) {
        (Some(_), Some(_)) => p.add(at, "give topics or topic_pattern, not both"),
        (None, None) => p.add(at, "needs topics or topic_pattern"),
        (Some(t), None) if t.is_empty() => p.add(format!("{at}.topics"), "is empty"),
        _ => {}
    }
    if kafka
        .group_id
        .as_deref()
        .is_some_and(|g| g.trim().is_empty())
    {
        p.add(format!("{at}.group_id"), "must not be empty");
    }
    if kafka
        .state_topic
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        p.add(format!("{at}.state_topic"), "must name a topic");
    }
    for (key, value) in kafka.properties.iter().flatten() {
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            p.add(
                format!("{at}.properties.{key}"),
                "must be a string, number or boolean",
            );
        }
        if matches!(
            key.as_str(),
            "enable.auto.offset.store" | "group.id" | "bootstrap.servers"
        ) {
            p.add(
                format!("{at}.properties.{key}"),
                "is set by flowlink (offsets are stored after parsing; use brokers and group_id)",
            );
        }
    }
    if let Some(properties) = &kafka.properties {
        check_librdkafka(p, &format!("{at}.properties"), properties, &[]);
    }
}

/// librdkafka's check of each property handed to it as it is (its name,
/// and its value against the property's type and range), so a typo or a
/// bad value is named by `check-config` and a reload rather than found at
/// start. One key at a time, so every bad one is named; `ours` are the
/// keys flowlink reads beside them, offered when an unknown key is a typo
/// of one. Not checked: how the properties combine (librdkafka does that
/// when the client is created), and any map that loads librdkafka plugins
/// (`plugin.library.paths`): a plugin adds properties of its own, and
/// checking the configuration must not load code.
fn check_librdkafka(
    p: &mut Problems,
    at: &str,
    properties: &std::collections::BTreeMap<String, serde_json::Value>,
    ours: &[&str],
) {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaConfRes;
    if properties.contains_key("plugin.library.paths") {
        return;
    }
    let scalar = |v: &serde_json::Value| v.is_string() || v.is_number() || v.is_boolean();
    for (key, value) in properties.iter().filter(|(_, v)| scalar(v)) {
        let mut client = rdkafka::ClientConfig::new();
        client.set(key, librdkafka_value(value));
        let why = match client.create_native_config() {
            Ok(_) => continue,
            Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, why, ..)) => {
                let hint = super::suggest::nearest(key, ours.iter().copied())
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                format!("{}{hint}", why.trim_end())
            }
            Err(KafkaError::ClientConfig(_, why, ..)) => why.trim_end().to_owned(),
            Err(other) => other.to_string(),
        };
        p.add(
            format!("{at}.{key}"),
            format!("librdkafka refuses it: {why}"),
        );
    }
}

fn check_aws(p: &mut Problems, at: &str, aws: &AwsProperties) {
    if aws.region.trim().is_empty() {
        p.add(format!("{at}.region"), "must not be empty");
    }
    if aws.log_group.trim().is_empty() {
        p.add(format!("{at}.log_group"), "must not be empty");
    }
    if aws.log_stream_prefix.is_some() && aws.log_streams.is_some() {
        p.add(at, "give log_stream_prefix or log_streams, not both");
    }
    if aws.log_streams.as_ref().is_some_and(Vec::is_empty) {
        p.add(format!("{at}.log_streams"), "is empty");
    }
    if let Some(seconds) = aws.poll_seconds
        && !(1..=3600).contains(&seconds)
    {
        p.add(
            format!("{at}.poll_seconds"),
            format!("must be between 1 and 3600, got {seconds}"),
        );
    }
    if let Some(url) = &aws.endpoint_url
        && reqwest::Url::parse(url).is_err()
    {
        p.add(
            format!("{at}.endpoint_url"),
            format!("{url:?} is not a URL"),
        );
    }
}

/// `pce.example.com:8443` means HTTPS (as in FlowLink); a full `http://` or
/// `https://` URL is taken as is.
pub fn pce_base_url(addr: &str) -> Result<reqwest::Url, String> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let text = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    };
    let url = reqwest::Url::parse(&text)
        .map_err(|e| format!("{addr:?} is not host:port or a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{addr:?} has no host"));
    }
    Ok(url)
}

//! What `flowlink check-config` says a configuration will do, key by key:
//! an operator moving from FlowLink sees how each of their keys is read.

use super::model::{Config, ConnectorSpec, LogFormat, UploadFormat};

/// One line per top-level key written in `text` (the file as read), in
/// file order, then one per consumer. Secrets are never shown.
pub fn describe(config: &Config, text: &str) -> Vec<String> {
    let written: Vec<String> = serde_yaml_ng::from_str::<serde_yaml_ng::Mapping>(text)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut lines = Vec::new();
    for key in &written {
        let what = match key.as_str() {
            "pce_addr" => format!("uploads go to {}", config.pce.base_url),
            "org_id" => format!("PCE organisation {}", config.pce.org_id),
            "api_key" => format!(
                "authenticates as API key {:?} (secret not shown)",
                config.pce.api_key.key
            ),
            "aggregation_minutes" | "aggregation_seconds" => format!(
                "one aggregation window every {} s per consumer",
                config.window.as_secs()
            ),
            "data_directory" => format!(
                "spool, checkpoints and plugin cache in {}",
                config.data_directory.display()
            ),
            "data_directory_size_mb" | "data_directory_size_kb" => format!(
                "spool bounded at {} KiB; the oldest batches go first",
                config.spool_max_bytes >> 10
            ),
            "file_retention_hours" => format!(
                "spooled batches older than {} h are dropped",
                config.file_retention.as_secs() / 3600
            ),
            "metrics_print_seconds" => {
                format!("counters logged every {} s", config.metrics_print.as_secs())
            }
            "consumers" | "destinations" => {
                format!(
                    "{} consumer(s), listed below",
                    config.consumers.len() + config.relays.len()
                )
            }
            "plugin_dir" => match &config.plugin_dir {
                Some(dir) => format!(
                    "plugins from {} add to or override the built-in ones, hot-swapped",
                    dir.display()
                ),
                None => "built-in plugins only".to_owned(),
            },
            "upload_format" => format!("uploads as {}", format_name(config.pce.upload_format)),
            "log_format" => format!(
                "logs to stderr as {}",
                match config.log.format {
                    LogFormat::Text => "text lines",
                    LogFormat::Json => "one JSON object per line",
                }
            ),
            "log_level" => format!(
                "logs events at {:?} (FLOWLINK_LOG overrides)",
                config.log.level
            ),
            _ => "set".to_owned(),
        };
        lines.push(format!("{key}: {what}"));
    }
    if !written.iter().any(|k| k == "plugin_dir") {
        lines.push("plugin_dir: not set, the built-in plugins are used".to_owned());
    }
    for (i, consumer) in config.consumers.iter().enumerate() {
        let connectors: Vec<String> = consumer.connectors.iter().map(connector_summary).collect();
        lines.push(format!(
            "consumer {i} {:?}: {} → parser {}",
            consumer.name,
            connectors.join(", "),
            consumer.parser.plugin
        ));
    }
    for relay in &config.relays {
        let connectors: Vec<String> = relay.connectors.iter().map(connector_summary).collect();
        lines.push(format!(
            "consumer {:?}: {} → relayed unparsed to Kafka topic {} at {}",
            relay.name,
            connectors.join(", "),
            relay.kafka.topic,
            relay.kafka.brokers.items().join(",")
        ));
    }
    lines
}

fn format_name(format: UploadFormat) -> &'static str {
    match format {
        UploadFormat::Auto => "protobuf, or CSV to the Bulk Traffic Loader if the PCE lacks it",
        UploadFormat::Protobuf => "protobuf (flowlink.v1.FlowBatch)",
        UploadFormat::BulkCsv => "CSV to the Bulk Traffic Loader",
    }
}

fn connector_summary(spec: &ConnectorSpec) -> String {
    let ports = |p: &super::model::PortList| {
        p.ports()
            .map(|ports| {
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    match spec {
        ConnectorSpec::Udp(udp) => format!("UDP port {}", ports(&udp.ports)),
        ConnectorSpec::Tcp(tcp) => format!("TCP port {}", ports(&tcp.ports)),
        ConnectorSpec::File(file) => format!("file {}", file.path.display()),
        ConnectorSpec::Kafka(kafka) => format!("Kafka {}", kafka.brokers.items().join(",")),
        ConnectorSpec::Aws(aws) => {
            format!("CloudWatch Logs group {} in {}", aws.log_group, aws.region)
        }
    }
}

//! Counters per consumer and for the uploader: printed as one log line each
//! every `metrics_print_seconds`, and served in Prometheus text format when
//! `metrics_listen` is set.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

macro_rules! counters {
    ($name:ident { $($field:ident: $help:literal,)* }) => {
        #[derive(Default, Debug)]
        pub struct $name {
            $(#[doc = $help] pub $field: AtomicU64,)*
        }

        impl $name {
            /// `(name, help, value)` of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($field), $help, self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters!(ConsumerCounters {
    messages_in: "messages received from connectors",
    bytes_in: "payload bytes received",
    queue_drops: "messages dropped because the parser queue was full",
    kernel_drops: "datagrams the kernel dropped before flowlink read them (receive buffer full)",
    messages_oversized: "lines or frames over the size bound, discarded",
    messages_failed: "messages a parser refused as a whole",
    flows_parsed: "flow records decoded",
    records_rejected: "single records a parser rejected",
    records_skipped: "records a parser left out on purpose (VPC NODATA/SKIPDATA)",
    plugin_timeouts: "plugin calls stopped at their deadline",
    plugin_out_of_memory: "plugin calls stopped at their memory cap",
    plugin_traps: "plugin calls that trapped (panic, invalid output)",
    plugin_over_cap: "messages refused for too many records",
    plugin_restarts: "plugin instances rebuilt after a fault",
    plugin_circuit_open: "datagrams not given to a circuit-broken plugin (lost unless quarantined)",
    messages_not_tried: "messages of a batch left untried after the plugin faulted on 4 of them",
    messages_quarantined: "messages kept in data_directory/quarantine/ after a plugin fault",
    flows_aggregated: "flow records folded into a window",
    aggregation_early_flushes: "windows flushed early because the key bound was hit",
    messages_relayed: "messages a relay's Kafka broker acknowledged",
    relay_disk_buffered: "messages a relay wrote to its disk buffer (broker away or slow)",
    relay_drops: "messages a relay lost: disk buffer over its bound or unwritable, or refused by the producer",
});

counters!(UploadCounters {
    batches_uploaded: "batches the PCE acknowledged",
    flows_uploaded: "aggregated flows the PCE acknowledged",
    upload_failures: "upload attempts that failed",
    batches_spooled: "batches written to the disk spool",
    batches_replayed: "spooled batches the PCE later acknowledged",
    batches_pruned: "spooled batches dropped by the size or age bound",
    flows_pruned: "aggregated flows lost with pruned batches",
    spool_corrupt: "unreadable spool files moved to corrupt/",
    batches_set_aside: "batches the PCE refused for good, kept in rejected/",
    batches_dropped: "batches lost because the spool could not be written",
    spool_batches: "batches in the spool now",
    spool_bytes: "bytes in the spool now",
});

/// Counters that go up and down, exported as Prometheus gauges.
const GAUGES: &[&str] = &["spool_batches", "spool_bytes"];

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Outcomes of a SIGHUP reload, for `config_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new file was applied (something changed).
    Applied,
    /// Valid, and the same as what runs.
    Unchanged,
    /// Invalid, or could not be applied: the old configuration runs on.
    Failed,
}

impl ReloadResult {
    const ALL: [ReloadResult; 3] = [
        ReloadResult::Applied,
        ReloadResult::Unchanged,
        ReloadResult::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Failed => "failed",
        }
    }
}

/// All counters of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By consumer slot (`RawMessage::consumer`). A reload appends slots; a
    /// consumer that comes back under its name shares its old counters.
    consumers: RwLock<Vec<(String, Arc<ConsumerCounters>)>>,
    pub upload: Arc<UploadCounters>,
    reloads: [AtomicU64; 3],
}

impl Metrics {
    pub fn new(consumer_names: impl IntoIterator<Item = String>) -> Arc<Self> {
        let metrics = Metrics::default();
        for name in consumer_names {
            metrics.register(&name);
        }
        Arc::new(metrics)
    }

    /// A new slot for consumer `name`; returns it.
    pub fn register(&self, name: &str) -> usize {
        let mut consumers = self.consumers.write().expect("metrics");
        let counters = consumers
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(Arc::default, |(_, c)| c.clone());
        consumers.push((name.to_owned(), counters));
        consumers.len() - 1
    }

    pub fn consumer(&self, slot: usize) -> Arc<ConsumerCounters> {
        self.consumers.read().expect("metrics")[slot].1.clone()
    }

    pub fn count_reload(&self, result: ReloadResult) {
        add(&self.reloads[result as usize], 1);
    }

    /// Each consumer once (slots of one name share their counters), by name.
    fn by_name(&self) -> Vec<(String, Arc<ConsumerCounters>)> {
        let mut seen = std::collections::BTreeMap::new();
        for (name, counters) in self.consumers.read().expect("metrics").iter() {
            seen.entry(name.clone()).or_insert_with(|| counters.clone());
        }
        seen.into_iter().collect()
    }

    /// One line per consumer plus one for the uploader: `name=value …`.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, counters) in &self.by_name() {
            let mut line = format!("consumer={name}");
            for (key, _, value) in counters.snapshot() {
                let _ = write!(line, " {key}={value}");
            }
            lines.push(line);
        }
        let mut line = "uploader".to_owned();
        for (key, _, value) in self.upload.snapshot() {
            let _ = write!(line, " {key}={value}");
        }
        lines.push(line);
        lines
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let consumers = self.by_name();
        if let Some((_, first)) = consumers.first() {
            for (i, (key, help, _)) in first.snapshot().into_iter().enumerate() {
                let _ = writeln!(out, "# HELP flowlink_{key}_total {help}");
                let _ = writeln!(out, "# TYPE flowlink_{key}_total counter");
                for (name, counters) in &consumers {
                    let value = counters.snapshot()[i].2;
                    let _ = writeln!(out, "flowlink_{key}_total{{consumer=\"{name}\"}} {value}");
                }
            }
        }
        for (key, help, value) in self.upload.snapshot() {
            let (name, kind) = if GAUGES.contains(&key) {
                (format!("flowlink_{key}"), "gauge")
            } else {
                (format!("flowlink_{key}_total"), "counter")
            };
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP flowlink_config_reloads_total SIGHUP reloads of the configuration file, by outcome"
        );
        let _ = writeln!(out, "# TYPE flowlink_config_reloads_total counter");
        for result in ReloadResult::ALL {
            let value = self.reloads[result as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "flowlink_config_reloads_total{{result=\"{}\"}} {value}",
                result.label()
            );
        }
        out
    }
}

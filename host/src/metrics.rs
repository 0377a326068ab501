//! Counters per consumer and for the uploader: printed as one log line each
//! every `metrics_print_seconds`, and served in Prometheus text format when
//! `metrics_listen` is set.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    flows_aggregated: "flow records folded into a window",
    aggregation_early_flushes: "windows flushed early because the key bound was hit",
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

/// All counters of the daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    pub consumers: Vec<(String, Arc<ConsumerCounters>)>,
    pub upload: Arc<UploadCounters>,
}

impl Metrics {
    pub fn new(consumer_names: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(Metrics {
            consumers: consumer_names
                .into_iter()
                .map(|n| (n, Arc::default()))
                .collect(),
            upload: Arc::default(),
        })
    }

    pub fn consumer(&self, index: usize) -> &Arc<ConsumerCounters> {
        &self.consumers[index].1
    }

    /// One line per consumer plus one for the uploader: `name=value …`.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, counters) in &self.consumers {
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
        if let Some((_, first)) = self.consumers.first() {
            for (i, (key, help, _)) in first.snapshot().into_iter().enumerate() {
                let _ = writeln!(out, "# HELP flowlink_{key}_total {help}");
                let _ = writeln!(out, "# TYPE flowlink_{key}_total counter");
                for (name, counters) in &self.consumers {
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
        out
    }
}

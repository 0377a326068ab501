//! A Kafka group's shared parser state (`kafka.state_topic`): each member
//! publishes its workers' snapshots, keyed by member and worker, to a
//! compacted topic; a member given partitions reads the topic's latest
//! value of every key and restores them all before it decodes a message of
//! the new partitions.
//!
//! Keyed by member and worker, not by exporter or partition: a snapshot is
//! the plugin's opaque bytes for every exporter a session saw, so the host
//! cannot split it. Restoring every member's snapshot costs memory for
//! exporters this member does not own, and nothing else: where two
//! snapshots know a template, the one learned later wins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka_log::KafkaLog;

/// The state topic is read until nothing more arrives for this long.
const QUIET: Duration = Duration::from_millis(500);
use crate::parser_state::StateSink;

struct StateEvents {
    log: KafkaLog,
}

impl ClientContext for StateEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for StateEvents {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => tracing::info!(
                connector = %self.log.label(),
                partition = message.partition(),
                offset = message.offset(),
                "parser state published"
            ),
            // The next snapshot (state changed) is published again.
            Err((e, _)) => tracing::warn!(
                connector = %self.log.label(),
                "parser state not published to the state topic: {e}"
            ),
        }
    }
}

/// Publishes one member's snapshots.
pub struct StateTopicPublisher {
    producer: ThreadedProducer<StateEvents>,
    topic: String,
    /// `host:data_directory/consumer`: one member's keys, stable across
    /// its restarts so compaction keeps one value per worker.
    member: String,
}

impl StateTopicPublisher {
    pub fn new(client: &ClientConfig, topic: &str, member: String, label: String) -> Result<Self> {
        let mut config = client.clone();
        config.set("message.timeout.ms", "60000");
        let producer = config
            .create_with_context(StateEvents {
                log: KafkaLog::new(label),
            })
            .context("creating the state topic's producer")?;
        Ok(StateTopicPublisher {
            producer,
            topic: topic.to_owned(),
            member,
        })
    }
}

impl StateSink for StateTopicPublisher {
    fn publish(&self, worker: usize, encoded: &[u8]) {
        let key = format!("{}/worker-{worker}", self.member);
        let record = BaseRecord::to(&self.topic).key(&key).payload(encoded);
        if let Err((e, _)) = self.producer.send(record) {
            tracing::warn!(topic = %self.topic, "parser state not published: {e}");
        } else {
            tracing::debug!(topic = %self.topic, key = %key, bytes = encoded.len(), "parser state handed to the producer");
        }
    }
}

/// This machine's name, for member keys.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The latest value of every key of `topic` (compaction's view, whether
/// or not the broker compacted yet). Blocking; bounded by `timeout`.
pub fn read_latest(client: &ClientConfig, topic: &str, timeout: Duration) -> Result<Vec<Vec<u8>>> {
    let deadline = Instant::now() + timeout;
    let mut config = client.clone();
    config
        .set("group.id", "flowlink-state-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config
        .create()
        .context("creating the state topic's reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("state topic {topic:?}: metadata"))?;
    let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    if let Some(e) = meta.error() {
        anyhow::bail!(
            "state topic {topic:?}: {}",
            rdkafka::types::RDKafkaErrorCode::from(e)
        );
    }
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in meta.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .with_context(|| {
                format!(
                    "state topic {topic:?}: offsets of partition {}",
                    partition.id()
                )
            })?;
        tracing::debug!(
            topic,
            partition = partition.id(),
            low,
            high,
            "state topic watermarks"
        );
        if high > low {
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    // Read to the high watermarks, then on until nothing came for QUIET:
    // some brokers (tansu) report a watermark short of the last message.
    let mut last_message = Instant::now();
    while !ends.is_empty() || last_message.elapsed() < QUIET {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!(
                "state topic {topic:?}: not read to its end within {} s",
                timeout.as_secs()
            );
        }
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            Some(Err(e)) => tracing::debug!(topic, "reading the state topic: {e}"),
            Some(Ok(message)) => {
                last_message = Instant::now();
                tracing::debug!(
                    topic,
                    partition = message.partition(),
                    offset = message.offset(),
                    key = %String::from_utf8_lossy(message.key().unwrap_or_default()),
                    bytes = message.payload().map_or(0, <[u8]>::len),
                    "state topic message"
                );
                if let Some(key) = message.key() {
                    match message.payload() {
                        Some(value) if !value.is_empty() => {
                            latest.insert(key.to_vec(), value.to_vec());
                        }
                        // A tombstone: the key's state is gone.
                        _ => {
                            latest.remove(key);
                        }
                    }
                }
                if ends
                    .get(&message.partition())
                    .is_some_and(|end| message.offset() + 1 >= *end)
                {
                    ends.remove(&message.partition());
                }
            }
        }
    }
    Ok(latest.into_values().collect())
}

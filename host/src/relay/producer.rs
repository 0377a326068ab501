//! The relay's Kafka producer (librdkafka through rdkafka): idempotent,
//! batching and compressing, its in-memory queue bounded by
//! `memory_max_mb`. Messages librdkafka gives up on (a broker away past
//! `message.timeout.ms`, a purge at shutdown) come back through a channel
//! to go to the disk buffer instead of being lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use super::disk_buffer::SegmentFile;
use super::latency::ProduceLatency;
use super::record::{HEADER_CONSUMER, HEADER_EXPORTER_PORT, HEADER_RECEIVED_MS, RelayRecord};
use crate::config::{RelayConfig, librdkafka_value};
use crate::kafka_log::KafkaLog;
use crate::metrics::{self, ConsumerCounters};
use crate::pipeline::Ack;

/// What travels with a message through librdkafka, to settle it or take
/// it back.
pub struct InFlight {
    exporter: SocketAddr,
    received_ms: u64,
    ack: Option<Ack>,
    segment: Option<Arc<SegmentFile>>,
    sent: Instant,
}

pub struct RelayEvents {
    log: KafkaLog,
    /// The broker refused the producer's identity (fenced, unknown
    /// producer id, broken sequence): its messages keep failing until a
    /// new producer (a new id) takes over.
    refused_identity: AtomicBool,
    counters: Arc<ConsumerCounters>,
    pub latency: ProduceLatency,
    failed: mpsc::UnboundedSender<RelayRecord>,
}

impl ClientContext for RelayEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for RelayEvents {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, inflight: Box<InFlight>) {
        let InFlight {
            exporter,
            received_ms,
            ack,
            segment,
            sent,
        } = *inflight;
        match result {
            Ok(_) => {
                self.latency.record(sent.elapsed());
                metrics::add(&self.counters.messages_relayed, 1);
                if let Some(ack) = ack {
                    ack.done();
                }
                drop(segment);
            }
            Err((e, message)) => {
                if matches!(
                    e,
                    KafkaError::MessageProduction(
                        RDKafkaErrorCode::ProducerFenced
                            | RDKafkaErrorCode::InvalidProducerEpoch
                            | RDKafkaErrorCode::UnknownProducerId
                            | RDKafkaErrorCode::OutOfOrderSequenceNumber
                            | RDKafkaErrorCode::InvalidProducerIdMapping
                    )
                ) {
                    self.refused_identity.store(true, Ordering::Relaxed);
                }
                // The broker will never take this message, however often
                // it is sent: dropped and counted, and its receipt fired so
                // a replayable source moves on rather than waits for it.
                if matches!(
                    e,
                    KafkaError::MessageProduction(
                        RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::InvalidMessageSize
                            | RDKafkaErrorCode::InvalidMessage
                            | RDKafkaErrorCode::InvalidRecord
                    )
                ) {
                    metrics::add(&self.counters.relay_drops, 1);
                    self.log.error(
                        e.clone(),
                        "the broker refuses a relayed message for good; dropped",
                    );
                    if let Some(ack) = ack {
                        ack.done();
                    }
                    drop(segment);
                    return;
                }
                if !matches!(
                    e,
                    KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue)
                        | KafkaError::MessageProduction(RDKafkaErrorCode::PurgeInflight)
                ) {
                    self.log
                        .error(e.clone(), "a relayed message goes to the disk buffer");
                }
                let record = RelayRecord {
                    exporter,
                    received_ms,
                    payload: message.payload().unwrap_or_default().to_vec().into(),
                    ack,
                    segment,
                };
                // The relay task is gone only after every delivery came
                // back; were it not, the record's receipt fails and a
                // replayable source sends it again.
                let _ = self.failed.send(record);
            }
        }
    }
}

/// Why a message was not taken.
pub enum Refused {
    /// The in-memory bound is reached: try later, or buffer on disk.
    Full(RelayRecord),
    /// librdkafka will never take it (too large, say): dropped, counted.
    Never,
}

pub struct KafkaRelayProducer {
    producer: ThreadedProducer<RelayEvents>,
    topic: String,
    consumer: String,
    counters: Arc<ConsumerCounters>,
}

impl KafkaRelayProducer {
    pub fn new(
        config: &RelayConfig,
        counters: Arc<ConsumerCounters>,
        failed: mpsc::UnboundedSender<RelayRecord>,
    ) -> Result<Self> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", config.kafka.brokers.items().join(","))
            .set("client.id", format!("flowlink-relay-{}", config.name))
            .set("enable.idempotence", "true")
            .set(
                "queue.buffering.max.kbytes",
                (config.memory_max_bytes >> 10).to_string(),
            )
            // The byte bound is the one that counts.
            .set("queue.buffering.max.messages", "10000000")
            .set("compression.type", "lz4")
            .set("linger.ms", "10");
        for (key, value) in &config.kafka.producer {
            client.set(key, librdkafka_value(value));
        }
        client.set_log_level(RDKafkaLogLevel::Warning);
        let events = RelayEvents {
            log: KafkaLog::new(format!("relay {}", config.name)),
            refused_identity: AtomicBool::new(false),
            counters: counters.clone(),
            latency: ProduceLatency::default(),
            failed,
        };
        let producer: ThreadedProducer<RelayEvents> =
            client.create_with_context(events).with_context(|| {
                format!(
                    "consumer {:?}: creating the Kafka producer of its relay",
                    config.name
                )
            })?;
        Ok(KafkaRelayProducer {
            producer,
            topic: config.kafka.topic.clone(),
            consumer: config.name.clone(),
            counters,
        })
    }

    /// Hands a message to librdkafka without waiting.
    pub fn send(&self, record: RelayRecord) -> Result<(), Refused> {
        let key = record.key();
        let RelayRecord {
            exporter,
            received_ms,
            payload,
            ack,
            segment,
        } = record;
        let port = exporter.port().to_string();
        let received = received_ms.to_string();
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: HEADER_EXPORTER_PORT,
                value: Some(port.as_str()),
            })
            .insert(Header {
                key: HEADER_RECEIVED_MS,
                value: Some(received.as_str()),
            })
            .insert(Header {
                key: HEADER_CONSUMER,
                value: Some(self.consumer.as_str()),
            });
        let inflight = Box::new(InFlight {
            exporter,
            received_ms,
            ack,
            segment,
            sent: Instant::now(),
        });
        let mut message =
            BaseRecord::<str, [u8], Box<InFlight>>::with_opaque_to(&self.topic, inflight)
                .payload(&payload)
                .headers(headers);
        if let Some(key) = &key {
            message = message.key(key.as_str());
        }
        match self.producer.send(message) {
            Ok(()) => Ok(()),
            Err((e, back)) => {
                let InFlight {
                    exporter,
                    received_ms,
                    ack,
                    segment,
                    ..
                } = *back.delivery_opaque;
                let record = RelayRecord {
                    exporter,
                    received_ms,
                    payload,
                    ack,
                    segment,
                };
                match e {
                    // Full, or unusable until replaced (`broken`):
                    // either way the disk keeps it.
                    KafkaError::MessageProduction(
                        RDKafkaErrorCode::QueueFull | RDKafkaErrorCode::Fatal,
                    ) => Err(Refused::Full(record)),
                    e => {
                        metrics::add(&self.counters.relay_drops, 1);
                        tracing::error!(consumer = %self.consumer, exporter = %exporter, bytes = record.payload.len(), "relay: the producer refused a message, dropped: {e}");
                        // Counted as dropped: a replayable source moves on.
                        if let Some(ack) = record.ack {
                            ack.done();
                        }
                        Err(Refused::Never)
                    }
                }
            }
        }
    }

    /// Why the producer can no longer be used (an idempotent producer's
    /// sequence broken beyond repair, or its id refused by the broker), if
    /// it cannot.
    pub fn broken(&self) -> Option<String> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Some(format!("{code}: {reason}"));
        }
        self.producer
            .context()
            .refused_identity
            .load(Ordering::Relaxed)
            .then(|| "the broker refused the producer's id".to_owned())
    }

    /// Messages librdkafka holds (queued or waiting for the broker).
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Gives up on what the broker has not acknowledged: every such
    /// message comes back through the failed channel. Blocking.
    pub fn purge(&self) {
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn latency(&self) -> &ProduceLatency {
        &self.producer.context().latency
    }
}

//! Relay consumers (`relay:` instead of `parser:`): every message a
//! connector receives goes, unparsed, to a Kafka topic that outlet daemons
//! consume in one group (docs/scale-out.md). Keyed by the exporter's
//! address, one exporter's datagrams — templates and data — always reach
//! the same partition, hence the same outlet.
//!
//! One task per relay takes messages from its connectors (through a shard
//! router of its own, with the same byte bounds and drop counting as the
//! parsers' queue) and hands them to librdkafka. When librdkafka's memory
//! bound is reached (a broker away or slow), messages go to the disk
//! buffer, and every later one after them, in order, until it has drained.

mod disk_buffer;
mod latency;
mod producer;
mod record;

pub use record::{HEADER_CONSUMER, HEADER_EXPORTER_PORT, HEADER_RECEIVED_MS};

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::blocking::off_the_runtime;
use crate::config::RelayConfig;
use crate::metrics::{self, ConsumerCounters, Metrics};
use crate::pipeline::{ShardRouter, WorkerInput};
use disk_buffer::DiskBuffer;
use producer::{KafkaRelayProducer, Refused};
use record::RelayRecord;

/// Messages taken from the queue per wake-up.
const BATCH: usize = 512;
/// How often the disk buffer is looked at while nothing arrives.
const TICK: Duration = Duration::from_millis(50);

/// A running relay: the router its connectors feed, and its task.
pub struct RelayHandle {
    pub router: ShardRouter,
    pub task: JoinHandle<()>,
}

/// Starts relay `config` on metrics slot `slot`. Its connectors are
/// started by the caller with [`RelayHandle::router`]; the task ends once
/// every clone of the router is gone, after delivering (or writing to
/// disk) what it holds, waiting at most `shutdown_wait` for the broker.
pub fn start(
    config: &RelayConfig,
    slot: usize,
    data_directory: &Path,
    metrics: Arc<Metrics>,
    queue: (usize, usize),
    shutdown_wait: Duration,
) -> Result<RelayHandle> {
    let counters = metrics.consumer(slot);
    let dir = data_directory.join("relay").join(&config.name);
    let buffer =
        off_the_runtime(|| DiskBuffer::open(&dir, config.disk_max_bytes)).with_context(|| {
            format!(
                "consumer {:?}: opening the relay's disk buffer {}",
                config.name,
                dir.display()
            )
        })?;
    let (failed_tx, failed) = mpsc::unbounded_channel();
    let producer = KafkaRelayProducer::new(config, counters.clone(), failed_tx.clone())?;
    let (tx, input) = mpsc::channel(queue.0);
    let router = ShardRouter::new(vec![tx], queue.1, metrics);
    tracing::info!(
        consumer = %config.name,
        brokers = %config.kafka.brokers.items().join(","),
        topic = %config.kafka.topic,
        "relaying to Kafka"
    );
    let relay = Relay {
        name: config.name.clone(),
        config: config.clone(),
        failed_tx,
        producer,
        buffer,
        draining: VecDeque::new(),
        failed,
        counters,
    };
    let task = tokio::spawn(relay.run(input, shutdown_wait));
    Ok(RelayHandle { router, task })
}

struct Relay {
    name: String,
    /// To build the producer again once it is broken.
    config: RelayConfig,
    failed_tx: mpsc::UnboundedSender<RelayRecord>,
    producer: KafkaRelayProducer,
    buffer: DiskBuffer,
    /// Records read back from the oldest segment, not yet taken by
    /// librdkafka: they go before anything in `buffer`.
    draining: VecDeque<RelayRecord>,
    failed: mpsc::UnboundedReceiver<RelayRecord>,
    counters: Arc<ConsumerCounters>,
}

impl Relay {
    async fn run(mut self, mut input: mpsc::Receiver<WorkerInput>, shutdown_wait: Duration) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                Some(record) = self.failed.recv() => self.buffer_on_disk(record),
                taken = input.recv_many(&mut batch, BATCH) => {
                    if taken == 0 {
                        break;
                    }
                    for item in batch.drain(..) {
                        // Control items are for parser workers.
                        match item {
                            WorkerInput::Message(message, _room) => {
                                self.offer(RelayRecord::from_message(message));
                            }
                            WorkerInput::Datagrams(messages, _room) => {
                                for message in messages {
                                    self.offer(RelayRecord::from_message(message));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ = tick.tick() => {}
            }
            // Every pass, not only on the tick: under steady input the
            // biased select never reaches the tick.
            self.replace_if_broken();
            self.drain();
            if self.buffer.write_due() {
                self.write_pending();
            }
        }
        self.finish(shutdown_wait).await;
    }

    /// An idempotent producer whose sequence broke for good (or whose id
    /// the broker refuses, e.g. after an epoch bump a broker does not
    /// support) fails everything: its messages come back (purged) and go to
    /// disk, and a new producer, with a new id, takes over.
    fn replace_if_broken(&mut self) {
        let Some(why) = self.producer.broken() else {
            return;
        };
        tracing::error!(consumer = %self.name, "relay: the Kafka producer failed for good ({why}); starting a new one");
        match KafkaRelayProducer::new(&self.config, self.counters.clone(), self.failed_tx.clone()) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.producer, fresh);
                // Destroying a producer blocks too.
                off_the_runtime(move || {
                    old.purge();
                    drop(old);
                });
            }
            Err(e) => tracing::error!(consumer = %self.name, "relay: no new producer yet: {e:#}"),
        }
    }

    /// Nothing waits: new messages go straight to librdkafka.
    fn direct(&self) -> bool {
        self.draining.is_empty() && self.buffer.is_empty()
    }

    fn offer(&mut self, record: RelayRecord) {
        if !self.direct() {
            self.buffer.push(record);
            return;
        }
        match self.producer.send(record) {
            Ok(()) | Err(Refused::Never) => {}
            Err(Refused::Full(record)) => {
                tracing::warn!(consumer = %self.name, "relay: the broker is not keeping up; messages wait on disk");
                self.buffer_on_disk(record);
            }
        }
    }

    /// A message librdkafka could not take or gave back.
    fn buffer_on_disk(&mut self, record: RelayRecord) {
        self.buffer.push(record);
    }

    fn write_pending(&mut self) {
        let outcome = off_the_runtime(|| self.buffer.write_pending());
        metrics::add(&self.counters.relay_disk_buffered, outcome.written);
        metrics::add(&self.counters.relay_drops, outcome.dropped);
    }

    /// Hands waiting messages to librdkafka, oldest first, while it has
    /// room.
    fn drain(&mut self) {
        loop {
            let record = match self.draining.pop_front() {
                Some(record) => record,
                None if self.buffer.has_segments() => {
                    match off_the_runtime(|| self.buffer.read_oldest()) {
                        Some(Ok(records)) => self.draining = records.into(),
                        Some(Err(lost)) => metrics::add(&self.counters.relay_drops, lost),
                        None => {}
                    }
                    continue;
                }
                None => match self.buffer.pop_pending() {
                    Some(record) => record,
                    None => return,
                },
            };
            let from_segment = record.segment.is_some();
            match self.producer.send(record) {
                Ok(()) | Err(Refused::Never) => {}
                Err(Refused::Full(record)) => {
                    if from_segment {
                        self.draining.push_front(record);
                    } else {
                        self.buffer.unpop_pending(record);
                    }
                    return;
                }
            }
        }
    }

    /// Delivers what is left while the broker takes it, up to `wait`; the
    /// rest goes to disk for the next run.
    async fn finish(mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            while let Ok(record) = self.failed.try_recv() {
                self.buffer_on_disk(record);
            }
            self.drain();
            if self.direct() && self.producer.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        off_the_runtime(|| self.producer.purge());
        while let Ok(record) = self.failed.try_recv() {
            self.buffer_on_disk(record);
        }
        for record in std::mem::take(&mut self.draining) {
            self.buffer.push(record);
        }
        // Pending messages behind the segments stay behind them.
        self.write_pending();
        let latency = self.producer.latency();
        let ms = |q| latency.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            consumer = %self.name,
            delivered = latency.count(),
            p50_ms = ?ms(0.5),
            p99_ms = ?ms(0.99),
            on_disk_bytes = self.buffer.bytes_on_disk(),
            "relay stopped: produce latency"
        );
    }
}

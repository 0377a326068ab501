//! Sends each raw message to the parser worker that owns its exporter.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{ByteBudget, RawMessage, WorkerInput};
use crate::metrics::{self, Metrics};
use crate::plugin::StreamId;

#[derive(Clone)]
pub struct ShardRouter {
    workers: Vec<mpsc::Sender<WorkerInput>>,
    /// Bytes of every message queued for a worker or in a worker's batch.
    budget: ByteBudget,
    metrics: Arc<Metrics>,
}

impl ShardRouter {
    pub fn new(
        workers: Vec<mpsc::Sender<WorkerInput>>,
        budget: ByteBudget,
        metrics: Arc<Metrics>,
    ) -> Self {
        assert!(!workers.is_empty(), "at least one parser worker");
        ShardRouter {
            workers,
            budget,
            metrics,
        }
    }

    /// A message's size for the budget: what its buffer holds in memory.
    fn size(message: &RawMessage) -> usize {
        message.payload.capacity() + std::mem::size_of::<RawMessage>()
    }

    /// Hash of the exporter's address (not its port: some exporters change
    /// source port on restart but keep their templates' scope). Sources
    /// without an exporter (Kafka partitions, log streams, files) carry
    /// 0.0.0.0 and a source number in the port, which spreads them over the
    /// workers while one source's messages stay in order.
    fn worker_of(&self, exporter: SocketAddr) -> &mpsc::Sender<WorkerInput> {
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let hash = if exporter.ip().is_unspecified() {
            hasher.hash_one(exporter.port())
        } else {
            hasher.hash_one(exporter.ip())
        };
        &self.workers[(hash % self.workers.len() as u64) as usize]
    }

    fn count_in(&self, message: &RawMessage) {
        let counters = self.metrics.consumer(message.consumer);
        metrics::add(&counters.messages_in, 1);
        metrics::add(&counters.bytes_in, message.payload.len() as u64);
    }

    /// Never waits: a datagram source cannot be paused, so a full queue
    /// (by count or by bytes) drops the message and counts it.
    pub fn route(&self, message: RawMessage) {
        self.count_in(&message);
        let consumer = message.consumer;
        let Some(bytes) = self.budget.try_take(Self::size(&message)) else {
            metrics::add(&self.metrics.consumer(consumer).queue_drops, 1);
            return;
        };
        let worker = self.worker_of(message.exporter);
        match worker.try_send(WorkerInput::Message(message, bytes)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {
                metrics::add(&self.metrics.consumer(consumer).queue_drops, 1);
            }
        }
    }

    /// Waits for room: a stream source (TCP) is paused instead, and the
    /// sender's window closes; nothing is dropped.
    pub async fn route_waiting(&self, message: RawMessage) {
        self.count_in(&message);
        let bytes = self.budget.take(Self::size(&message)).await;
        let worker = self.worker_of(message.exporter);
        let _ = worker.send(WorkerInput::Message(message, bytes)).await;
    }

    pub async fn close_stream(&self, consumer: usize, exporter: SocketAddr, stream: StreamId) {
        let _ = self
            .worker_of(exporter)
            .send(WorkerInput::StreamClosed { consumer, stream })
            .await;
    }
}

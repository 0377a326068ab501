//! Sends each raw message to the parser worker that owns its exporter.

use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{ByteBudget, RawMessage, ShardKey, WorkerInput};
use crate::metrics::{self, Metrics};
use crate::plugin::StreamId;

#[derive(Clone)]
pub struct ShardRouter {
    workers: Vec<mpsc::Sender<WorkerInput>>,
    /// Bytes of every message queued for a worker or in a worker's batch:
    /// one budget for datagrams and one for sources that wait, so a stream
    /// waiting for a large amount cannot take every freed byte while
    /// datagrams are dropped.
    datagrams: ByteBudget,
    waiting: ByteBudget,
    metrics: Arc<Metrics>,
}

impl ShardRouter {
    pub fn new(
        workers: Vec<mpsc::Sender<WorkerInput>>,
        max_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        assert!(!workers.is_empty(), "at least one parser worker");
        let half = (max_bytes / 2).max(1);
        ShardRouter {
            workers,
            datagrams: ByteBudget::new(half),
            waiting: ByteBudget::new(half),
            metrics,
        }
    }

    /// A message's size for the budget: what its buffer holds in memory.
    fn size(message: &RawMessage) -> usize {
        message.payload.capacity() + std::mem::size_of::<RawMessage>()
    }

    fn worker_of(&self, shard: ShardKey) -> &mpsc::Sender<WorkerInput> {
        &self.workers[shard.worker(self.workers.len())]
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
        let Some(bytes) = self.datagrams.try_take(Self::size(&message)) else {
            metrics::add(&self.metrics.consumer(consumer).queue_drops, 1);
            return;
        };
        let worker = self.worker_of(message.shard);
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
        let bytes = self.waiting.take(Self::size(&message)).await;
        let worker = self.worker_of(message.shard);
        let _ = worker.send(WorkerInput::Message(message, bytes)).await;
    }

    /// Queues a control item for every worker, after what each holds.
    pub async fn broadcast(&self, item: impl Fn() -> WorkerInput) {
        for worker in &self.workers {
            let _ = worker.send(item()).await;
        }
    }

    pub async fn close_stream(&self, consumer: usize, shard: ShardKey, stream: StreamId) {
        let _ = self
            .worker_of(shard)
            .send(WorkerInput::StreamClosed { consumer, stream })
            .await;
    }
}

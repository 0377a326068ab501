//! Sends each raw message to the parser worker that owns its exporter.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{ByteBudget, BytePermit, RawMessage, ShardKey, WorkerInput};
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

    /// A receive pass's gathering of datagrams, for [`ShardRouter::gather`]
    /// and [`ShardRouter::send_gathered`].
    pub fn datagram_batch(&self, consumer: usize) -> DatagramBatch {
        DatagramBatch {
            consumer,
            per_worker: self.workers.iter().map(|_| None).collect(),
            len: 0,
            bytes_in: 0,
            drops: 0,
        }
    }

    /// Takes a datagram's room in the budget now and keeps it for its
    /// worker's item. Never waits: a datagram source cannot be paused, so
    /// with the budget spent the datagram is dropped and counted.
    pub fn gather(&self, batch: &mut DatagramBatch, message: RawMessage) {
        debug_assert_eq!(message.consumer, batch.consumer);
        batch.len += 1;
        batch.bytes_in += message.payload.len() as u64;
        let Some(bytes) = self.datagrams.try_take(Self::size(&message)) else {
            batch.drops += 1;
            return;
        };
        let worker = message.shard.worker(self.workers.len());
        match &mut batch.per_worker[worker] {
            Some((messages, room)) => {
                messages.push(message);
                room.merge(bytes);
            }
            none => *none = Some((vec![message], bytes)),
        }
    }

    /// Queues what was gathered, one item per worker: a worker wakes once
    /// for a receive pass, not once per datagram. Never waits; an item
    /// that does not fit is dropped and its datagrams counted.
    pub fn send_gathered(&self, batch: &mut DatagramBatch) {
        for (worker, gathered) in self.workers.iter().zip(&mut batch.per_worker) {
            let Some((messages, room)) = gathered.take() else {
                continue;
            };
            let count = messages.len() as u64;
            if worker
                .try_send(WorkerInput::Datagrams(messages, room))
                .is_err()
            {
                batch.drops += count;
            }
        }
        let counters = self.metrics.consumer(batch.consumer);
        metrics::add(&counters.messages_in, std::mem::take(&mut batch.len) as u64);
        metrics::add(&counters.bytes_in, std::mem::take(&mut batch.bytes_in));
        metrics::add(&counters.queue_drops, std::mem::take(&mut batch.drops));
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

/// Datagrams of one consumer gathered during a receive pass, with their
/// room in the budget, until [`ShardRouter::send_gathered`] queues them.
pub struct DatagramBatch {
    consumer: usize,
    per_worker: Vec<Option<(Vec<RawMessage>, BytePermit)>>,
    /// Datagrams gathered since the last send, kept or dropped.
    len: usize,
    bytes_in: u64,
    drops: u64,
}

impl DatagramBatch {
    /// Datagrams gathered since the last send.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

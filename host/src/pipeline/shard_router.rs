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
            first: 0,
            len: 0,
            bytes_in: 0,
            drops: 0,
        }
    }

    /// Keeps a datagram for its worker's item. Its room in the budget is
    /// taken when the item is queued ([`ShardRouter::send_gathered`]):
    /// once a pass, not once a datagram (three atomic operations on a
    /// line the workers' releases also write, 1.5 % of the daemon at 8
    /// exporters).
    pub fn gather(&self, batch: &mut DatagramBatch, message: RawMessage) {
        debug_assert_eq!(message.consumer, batch.consumer);
        batch.len += 1;
        batch.bytes_in += message.payload.len() as u64;
        let worker = message.shard.worker(self.workers.len());
        let size = Self::size(&message);
        match &mut batch.per_worker[worker] {
            Some((messages, bytes)) => {
                messages.push(message);
                *bytes += size;
            }
            none => *none = Some((vec![message], size)),
        }
    }

    /// Queues what was gathered, one item per worker: a worker wakes once
    /// for a receive pass, not once per datagram. Never waits: a datagram
    /// source cannot be paused, so with the budget spent the datagrams
    /// that do not fit, or an item the queue has no place for, are
    /// dropped and counted.
    pub fn send_gathered(&self, batch: &mut DatagramBatch) {
        // Each pass starts at the next worker: near a spent budget the
        // first to ask gets the room, and that must not always be worker 0.
        let workers = self.workers.len();
        batch.first = (batch.first + 1) % workers;
        for worker in (0..workers).map(|n| (batch.first + n) % workers) {
            let Some((mut messages, bytes)) = batch.per_worker[worker].take() else {
                continue;
            };
            let Some(room) = self
                .datagrams
                .try_take_within(bytes)
                .or_else(|| self.room_for_some(&mut messages, &mut batch.drops))
            else {
                continue;
            };
            let count = messages.len() as u64;
            if self.workers[worker]
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

    /// Not room for a whole item: each datagram that fits is kept, the
    /// others dropped, as if each had asked on its own. `None` when none fits.
    fn room_for_some(&self, messages: &mut Vec<RawMessage>, drops: &mut u64) -> Option<BytePermit> {
        let mut room: Option<BytePermit> = None;
        messages.retain(
            |message| match self.datagrams.try_take(Self::size(message)) {
                Some(taken) => {
                    match &mut room {
                        Some(room) => room.merge(taken),
                        none => *none = Some(taken),
                    }
                    true
                }
                None => {
                    *drops += 1;
                    false
                }
            },
        );
        room
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

/// Datagrams of one consumer gathered during a receive pass, until
/// [`ShardRouter::send_gathered`] takes their room in the budget and
/// queues them.
pub struct DatagramBatch {
    consumer: usize,
    /// Per worker: its datagrams and the room they need in the budget.
    per_worker: Vec<Option<(Vec<RawMessage>, usize)>>,
    /// The worker whose item took its room first in the last send.
    first: usize,
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;

    use super::*;

    fn datagram(bytes: usize) -> RawMessage {
        from("192.0.2.1:2055", bytes)
    }

    fn from(exporter: &str, bytes: usize) -> RawMessage {
        let exporter: SocketAddr = exporter.parse().unwrap();
        RawMessage {
            consumer: 0,
            exporter,
            shard: ShardKey::exporter(exporter.ip()),
            received_ms: 0,
            payload: vec![0; bytes],
            stream: None,
            ack: None,
        }
    }

    #[test]
    fn a_pass_over_the_budget_keeps_the_datagrams_that_fit_and_counts_the_rest() {
        let (tx, mut rx) = mpsc::channel(4);
        let metrics = Metrics::new(["c".to_owned()]);
        let each = 1000 + std::mem::size_of::<RawMessage>();
        // The datagram half of the budget holds two and a half datagrams.
        let router = ShardRouter::new(vec![tx], 5 * each, metrics.clone());
        let mut batch = router.datagram_batch(0);
        for _ in 0..4 {
            router.gather(&mut batch, datagram(1000));
        }
        router.send_gathered(&mut batch);
        let Ok(WorkerInput::Datagrams(kept, room)) = rx.try_recv() else {
            panic!("one item for the worker");
        };
        assert_eq!(kept.len(), 2);
        let counters = metrics.consumer(0);
        assert_eq!(counters.queue_drops.load(Ordering::Relaxed), 2);
        assert_eq!(counters.messages_in.load(Ordering::Relaxed), 4);

        // While the item holds its room, a pass that fits whole still does.
        router.gather(&mut batch, datagram(100));
        router.send_gathered(&mut batch);
        assert!(matches!(rx.try_recv(), Ok(WorkerInput::Datagrams(m, _)) if m.len() == 1));
        drop(room);
        for _ in 0..2 {
            router.gather(&mut batch, datagram(1000));
        }
        router.send_gathered(&mut batch);
        assert!(matches!(rx.try_recv(), Ok(WorkerInput::Datagrams(m, _)) if m.len() == 2));
        assert_eq!(counters.queue_drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn near_a_spent_budget_the_workers_take_turns_at_the_room() {
        let (tx0, mut rx0) = mpsc::channel(4);
        let (tx1, mut rx1) = mpsc::channel(4);
        let metrics = Metrics::new(["c".to_owned()]);
        let each = 1000 + std::mem::size_of::<RawMessage>();
        // Room for one datagram of the two a pass brings.
        let router = ShardRouter::new(vec![tx0, tx1], 3 * each, metrics);
        let exporters: Vec<String> = (1..=20).map(|n| format!("192.0.2.{n}:2055")).collect();
        let on = |worker: usize| {
            exporters
                .iter()
                .find(|e| {
                    ShardKey::exporter(e.parse::<SocketAddr>().unwrap().ip()).worker(2) == worker
                })
                .unwrap()
                .clone()
        };
        let (zero, one) = (on(0), on(1));
        let mut batch = router.datagram_batch(0);
        let mut served = Vec::new();
        for _ in 0..4 {
            router.gather(&mut batch, from(&zero, 1000));
            router.gather(&mut batch, from(&one, 1000));
            router.send_gathered(&mut batch);
            match (rx0.try_recv(), rx1.try_recv()) {
                (Ok(_), Err(_)) => served.push(0),
                (Err(_), Ok(_)) => served.push(1),
                other => panic!("one worker served a pass: {other:?}"),
            }
        }
        assert_eq!(served, [1, 0, 1, 0]);
    }
}

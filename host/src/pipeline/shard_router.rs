//! Sends each raw message to the parser worker that owns its exporter.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::{ByteBudget, BytePermit, Payload, RawMessage, ShardKey, WorkerInput};
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
        message.payload.footprint() + std::mem::size_of::<RawMessage>()
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
            per_worker: self.workers.iter().map(|_| Gathered::default()).collect(),
            first: 0,
            len: 0,
            bytes_in: 0,
            drops: 0,
        }
    }

    /// Keeps a copy of a datagram for its worker's item, in the item's
    /// arena: no allocation per datagram. Its room in the budget is taken
    /// when the item is queued ([`ShardRouter::send_gathered`]): once a
    /// pass, not once a datagram (three atomic operations on a line the
    /// workers' releases also write, 1.5 % of the daemon at 8 exporters).
    pub fn gather(
        &self,
        batch: &mut DatagramBatch,
        exporter: SocketAddr,
        received_ms: u64,
        payload: &[u8],
    ) {
        batch.len += 1;
        batch.bytes_in += payload.len() as u64;
        let shard = ShardKey::exporter(exporter.ip());
        let gathered = &mut batch.per_worker[shard.worker(self.workers.len())];
        if gathered.arena.capacity() == 0 {
            gathered.arena.reserve(ARENA_BYTES.max(payload.len()));
        }
        gathered.arena.extend_from_slice(payload);
        gathered.datagrams.push(Datagram {
            exporter,
            shard,
            received_ms,
            len: payload.len(),
        });
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
            let gathered = std::mem::take(&mut batch.per_worker[worker]);
            if gathered.datagrams.is_empty() {
                continue;
            }
            let Some((messages, room)) = self.item_of(batch.consumer, gathered, &mut batch.drops)
            else {
                continue;
            };
            // Those the budget refused are counted already.
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

    /// A worker's gathered datagrams as messages, and their room in the
    /// budget: the whole arena's when it is at least half full, else they
    /// move to one of their exact size (a quiet pass of a datagram or two
    /// must not hold, nor be charged, a whole arena). Without room for all,
    /// each datagram that fits is kept, in order, the others dropped, as if
    /// each had asked on its own. `None` when none fits.
    fn item_of(
        &self,
        consumer: usize,
        gathered: Gathered,
        drops: &mut u64,
    ) -> Option<(Vec<RawMessage>, BytePermit)> {
        let Gathered { arena, datagrams } = gathered;
        let per_message = std::mem::size_of::<RawMessage>();
        let whole = arena.capacity() <= 2 * arena.len();
        let arena_bytes = if whole { arena.capacity() } else { arena.len() };
        if let Some(room) = self
            .datagrams
            .try_take_within(arena_bytes + datagrams.len() * per_message)
        {
            let arena = if whole {
                arena.freeze()
            } else {
                Bytes::copy_from_slice(&arena)
            };
            return Some((messages_of(consumer, arena, &datagrams), room));
        }
        let mut room: Option<BytePermit> = None;
        let mut kept = Vec::new();
        let mut at = 0;
        for datagram in &datagrams {
            let start = at;
            at += datagram.len;
            let Some(taken) = self.datagrams.try_take(datagram.len + per_message) else {
                *drops += 1;
                continue;
            };
            match &mut room {
                Some(room) => room.merge(taken),
                none => *none = Some(taken),
            }
            kept.push((*datagram, start));
        }
        let room = room?;
        // Exactly the kept bytes, so the buffer holds what was charged.
        let mut bytes = Vec::with_capacity(kept.iter().map(|(d, _)| d.len).sum());
        for (datagram, start) in &kept {
            bytes.extend_from_slice(&arena[*start..start + datagram.len]);
        }
        let kept: Vec<Datagram> = kept.into_iter().map(|(d, _)| d).collect();
        Some((messages_of(consumer, Bytes::from(bytes), &kept), room))
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

/// First size of a worker's arena for a pass: a pass's 64 datagrams of an
/// Ethernet MTU. It grows (doubling) for larger ones.
const ARENA_BYTES: usize = 64 * 1536;

/// One datagram of a worker's arena, in arrival order.
#[derive(Clone, Copy)]
struct Datagram {
    exporter: SocketAddr,
    shard: ShardKey,
    received_ms: u64,
    len: usize,
}

/// A worker's datagrams of a pass: their bytes end to end, and each one's
/// sender and length.
#[derive(Default)]
struct Gathered {
    arena: BytesMut,
    datagrams: Vec<Datagram>,
}

/// The datagrams laid end to end in `arena`, as messages sharing it.
fn messages_of(consumer: usize, arena: Bytes, datagrams: &[Datagram]) -> Vec<RawMessage> {
    let mut at = 0;
    datagrams
        .iter()
        .map(|d| {
            let payload = Payload::slice_of(arena.slice(at..at + d.len));
            at += d.len;
            RawMessage {
                consumer,
                exporter: d.exporter,
                shard: d.shard,
                received_ms: d.received_ms,
                payload,
                stream: None,
                ack: None,
            }
        })
        .collect()
}

/// Datagrams of one consumer gathered during a receive pass, until
/// [`ShardRouter::send_gathered`] takes their room in the budget and
/// queues them.
pub struct DatagramBatch {
    consumer: usize,
    /// Per worker: its datagrams, not yet charged to the budget.
    per_worker: Vec<Gathered>,
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

    fn datagram(router: &ShardRouter, batch: &mut DatagramBatch, bytes: usize) {
        from(router, batch, "192.0.2.1:2055", bytes)
    }

    fn from(router: &ShardRouter, batch: &mut DatagramBatch, exporter: &str, bytes: usize) {
        router.gather(batch, exporter.parse().unwrap(), 0, &vec![7; bytes]);
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
            datagram(&router, &mut batch, 1000);
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
        datagram(&router, &mut batch, 100);
        router.send_gathered(&mut batch);
        assert!(matches!(rx.try_recv(), Ok(WorkerInput::Datagrams(m, _)) if m.len() == 1));
        drop(room);
        for _ in 0..2 {
            datagram(&router, &mut batch, 1000);
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
            from(&router, &mut batch, &zero, 1000);
            from(&router, &mut batch, &one, 1000);
            router.send_gathered(&mut batch);
            match (rx0.try_recv(), rx1.try_recv()) {
                (Ok(_), Err(_)) => served.push(0),
                (Err(_), Ok(_)) => served.push(1),
                other => panic!("one worker served a pass: {other:?}"),
            }
        }
        assert_eq!(served, [1, 0, 1, 0]);
    }

    #[test]
    fn an_item_holds_its_whole_arena_when_full_and_its_bytes_when_not() {
        let (tx, mut rx) = mpsc::channel(4);
        let router = ShardRouter::new(vec![tx], 64 << 20, Metrics::new(["c".to_owned()]));
        let half = 32 << 20;
        let per_message = std::mem::size_of::<RawMessage>();
        let exporter: SocketAddr = "192.0.2.1:2055".parse().unwrap();
        let mut batch = router.datagram_batch(0);
        for n in 0..64u8 {
            router.gather(&mut batch, exporter, u64::from(n), &[n; 1500]);
        }
        router.send_gathered(&mut batch);
        assert_eq!(
            half - router.datagrams.available(),
            ARENA_BYTES + 64 * per_message
        );
        let Ok(WorkerInput::Datagrams(full, room)) = rx.try_recv() else {
            panic!("one item for the worker");
        };
        for (n, message) in full.iter().enumerate() {
            assert!(message.payload.iter().all(|&b| usize::from(b) == n));
            assert_eq!(message.payload.len(), 1500);
            assert_eq!(message.received_ms, n as u64);
            assert_eq!(message.exporter, exporter);
        }
        drop(room);
        drop(full);
        assert_eq!(router.datagrams.available(), half);

        // A quiet pass: one small datagram moves to a buffer of its size.
        router.gather(&mut batch, exporter, 0, b"small");
        router.send_gathered(&mut batch);
        assert_eq!(half - router.datagrams.available(), 5 + per_message);
        let Ok(WorkerInput::Datagrams(quiet, _room)) = rx.try_recv() else {
            panic!("one item for the worker");
        };
        assert_eq!(&*quiet[0].payload, b"small");
    }

    #[test]
    fn a_partly_kept_item_keeps_each_datagram_whole_and_a_full_queue_counts_each_drop_once() {
        let (tx, mut rx) = mpsc::channel(1);
        let metrics = Metrics::new(["c".to_owned()]);
        let each = 1000 + std::mem::size_of::<RawMessage>();
        let router = ShardRouter::new(vec![tx], 5 * each, metrics.clone());
        let exporter: SocketAddr = "192.0.2.1:2055".parse().unwrap();
        let mut batch = router.datagram_batch(0);
        // Room for two of four: the first two, each its own bytes.
        for n in 1..=4u8 {
            router.gather(&mut batch, exporter, 0, &vec![n; 1000 + usize::from(n)]);
        }
        router.send_gathered(&mut batch);
        let Ok(WorkerInput::Datagrams(kept, room)) = rx.try_recv() else {
            panic!("one item for the worker");
        };
        assert_eq!(kept.len(), 2);
        for (message, n) in kept.iter().zip(1u8..) {
            assert_eq!(message.payload.len(), 1000 + usize::from(n));
            assert!(message.payload.iter().all(|&b| b == n));
        }
        drop(room);
        let counters = metrics.consumer(0);
        assert_eq!(counters.queue_drops.load(Ordering::Relaxed), 2);

        // The queue (one item) is full: of the next four, two find no room
        // in the budget and two no place in the queue; four drops, not six.
        router.gather(&mut batch, exporter, 0, b"fills the queue");
        router.send_gathered(&mut batch);
        for _ in 0..4 {
            router.gather(&mut batch, exporter, 0, &[0; 1000]);
        }
        let _held = kept;
        router.send_gathered(&mut batch);
        assert_eq!(counters.queue_drops.load(Ordering::Relaxed), 2 + 4);
        assert_eq!(counters.messages_in.load(Ordering::Relaxed), 9);
    }
}

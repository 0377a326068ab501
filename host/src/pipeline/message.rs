//! Messages between stages.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use flowlink_flow::{PackedFlows, PackedRecord};

use tokio::sync::oneshot;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{BytePermit, Payload};
use crate::config::BreakerSettings;
use crate::plugin::{InputMessage, Origin, ParserInstance, StreamId, ip_to_wit};

/// Which parser worker a message goes to. All messages of one key meet
/// the same parser session, in order: one exporter's (its templates live
/// there), or one source's when there is no exporter (a file, a log
/// stream, a Kafka partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardKey(u64);

impl ShardKey {
    /// By the exporter's address, not its port: some exporters change
    /// source port on restart but keep their templates' scope.
    pub fn exporter(ip: IpAddr) -> Self {
        ShardKey(Self::hash(ip))
    }

    /// A source without an exporter, by a name unique to it.
    pub fn source(name: impl Hash) -> Self {
        ShardKey(Self::hash(name))
    }

    fn hash(value: impl Hash) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
    }

    /// The worker of `workers` this key belongs to.
    pub fn worker(self, workers: usize) -> usize {
        (self.0 % workers as u64) as usize
    }
}

/// An exporter address for messages that have none: the unspecified
/// address, port 0 (what plugins see as "unknown").
pub const NO_EXPORTER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Bytes as a connector received them. Connectors never parse.
#[derive(Debug)]
pub struct RawMessage {
    /// Index into `Config::consumers`.
    pub consumer: usize,
    /// The exporter (UDP or TCP peer, a Kafka key naming one), or
    /// [`NO_EXPORTER`].
    pub exporter: SocketAddr,
    /// Decides the worker.
    pub shard: ShardKey,
    pub received_ms: u64,
    pub payload: Payload,
    /// The TCP connection it came over; `None` for datagrams.
    pub stream: Option<StreamId>,
    /// Fired once the message's records are durable (the window holding
    /// them checkpointed, spooled or uploaded): sources that can replay
    /// (Kafka, CloudWatch, files) advance their resume point only then.
    pub ack: Option<Ack>,
}

impl RawMessage {
    /// A message of a replayable source without an exporter (a file, a
    /// log stream), and the receipt that fires once its records are
    /// durable: the source advances its resume point only then.
    pub fn replayable(
        consumer: usize,
        shard: ShardKey,
        payload: impl Into<Payload>,
    ) -> (RawMessage, oneshot::Receiver<()>) {
        let (ack, receipt) = Ack::new();
        let message = RawMessage {
            consumer,
            exporter: NO_EXPORTER,
            shard,
            received_ms: now_ms(),
            payload: payload.into(),
            stream: None,
            ack: Some(ack),
        };
        (message, receipt)
    }
}

/// A plugin call reads the payload where the connector put it.
impl InputMessage for RawMessage {
    fn origin(&self) -> Origin {
        Origin {
            exporter: ip_to_wit(self.exporter.ip()),
            port: self.exporter.port(),
            received_ms: self.received_ms,
        }
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The sending half of a delivery receipt. Dropped without [`Ack::done`]
/// (daemon stopped before the hand-off), the receiver sees an error and the
/// source does not advance. [`Ack::share`] makes one receipt cover many
/// messages (a Kafka source acknowledges in groups): it fires once every
/// share is done, and fails if any share is dropped undone.
#[derive(Debug)]
pub struct Ack {
    receipt: Arc<Receipt>,
    done: bool,
}

#[derive(Debug)]
struct Receipt {
    tx: Option<oneshot::Sender<()>>,
    failed: AtomicBool,
}

impl Drop for Receipt {
    /// The last share is gone: the receipt fires unless one failed.
    fn drop(&mut self) {
        if !*self.failed.get_mut()
            && let Some(tx) = self.tx.take()
        {
            let _ = tx.send(());
        }
    }
}

impl Ack {
    pub fn new() -> (Ack, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let receipt = Arc::new(Receipt {
            tx: Some(tx),
            failed: AtomicBool::new(false),
        });
        (
            Ack {
                receipt,
                done: false,
            },
            rx,
        )
    }

    /// Another part of the same receipt.
    pub fn share(&self) -> Ack {
        Ack {
            receipt: self.receipt.clone(),
            done: false,
        }
    }

    pub fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.done {
            self.receipt.failed.store(true, Ordering::Relaxed);
        }
    }
}

/// What parser workers receive. Control items travel in the same queue as
/// messages, so they take effect after every message queued before them.
pub enum WorkerInput {
    /// A message and its room in the workers' byte budget.
    Message(RawMessage, BytePermit),
    /// One receive pass's datagrams for this worker, in arrival order, and
    /// their room in the budget.
    Datagrams(Vec<RawMessage>, BytePermit),
    /// A connection closed: its parser session (and templates) go too.
    StreamClosed { consumer: usize, stream: StreamId },
    /// A consumer added by a reload: its session on this worker.
    OpenConsumer {
        consumer: usize,
        name: Arc<str>,
        session: Box<ParserInstance>,
        breaker: BreakerSettings,
    },
    /// A consumer's parser changed on reload: move to `session`, carrying
    /// the old session's state over when `carry_state` (same plugin).
    ReplaceSession {
        consumer: usize,
        session: Box<ParserInstance>,
        carry_state: bool,
        breaker: BreakerSettings,
    },
    /// Snapshots other members of a Kafka group published (snapshot file
    /// bytes): the consumer's session restores those its plugin made.
    RestoreState {
        consumer: usize,
        states: Arc<Vec<Vec<u8>>>,
    },
    /// A consumer removed by a reload: its session goes; `done` fires once
    /// every flow of its earlier messages is with the aggregator.
    CloseConsumer {
        consumer: usize,
        done: oneshot::Sender<()>,
    },
}

impl std::fmt::Debug for WorkerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerInput::Message(m, _) => f.debug_tuple("Message").field(m).finish(),
            WorkerInput::Datagrams(m, _) => write!(f, "Datagrams({})", m.len()),
            WorkerInput::StreamClosed { consumer, stream } => f
                .debug_struct("StreamClosed")
                .field("consumer", consumer)
                .field("stream", stream)
                .finish(),
            WorkerInput::OpenConsumer { consumer, .. } => {
                write!(f, "OpenConsumer({consumer})")
            }
            WorkerInput::ReplaceSession { consumer, .. } => {
                write!(f, "ReplaceSession({consumer})")
            }
            WorkerInput::CloseConsumer { consumer, .. } => {
                write!(f, "CloseConsumer({consumer})")
            }
            WorkerInput::RestoreState { consumer, states } => {
                write!(f, "RestoreState({consumer}, {} snapshots)", states.len())
            }
        }
    }
}

/// What the aggregator receives: flows, and the consumer set changing on a
/// reload (in the same queue, so a removal comes after the last flows).
#[derive(Debug)]
pub enum AggregatorInput {
    Flows(ParsedFlows),
    /// A new consumer slot: a window opens for it.
    ConsumerAdded {
        consumer: usize,
        owner: crate::aggregator::WindowOwner,
    },
    /// A consumer is gone: its open window is flushed and closed.
    ConsumerRemoved {
        consumer: usize,
    },
    /// Receipts of messages whose flows came before them in this queue:
    /// they fire once those flows are on disk (a window checkpoint, the
    /// spool) or at the PCE.
    Acks {
        consumer: usize,
        acks: Vec<Ack>,
    },
}

/// What a parser made of the messages of one plugin call, on its way to the
/// aggregator: one queue item (one wake-up of the aggregator) for up to a
/// whole batch of messages instead of one per message.
#[derive(Debug)]
pub struct ParsedFlows {
    pub consumer: usize,
    pub flows: PackedFlows,
    /// Who exported `flows`: runs in order, `(exporter, end)` with `end`
    /// the index one past the run's last flow.
    pub exporters: Vec<(SocketAddr, usize)>,
    /// Receipts of messages whose flows are in this or earlier items:
    /// travelling with the flows, they always join the window that holds
    /// them, even when the window closes right after.
    pub acks: Vec<Ack>,
    /// Room in the aggregator queue's byte budget, held until merged.
    pub bytes: Option<BytePermit>,
}

impl ParsedFlows {
    /// Flows in one item, at most (unless one message alone has more): what
    /// one item holds in the byte budget stays small beside the bound.
    pub const MAX_FLOWS: usize = 8192;

    pub fn new(consumer: usize) -> Self {
        ParsedFlows {
            consumer,
            flows: PackedFlows::new(),
            exporters: Vec::new(),
            acks: Vec::new(),
            bytes: None,
        }
    }

    /// One plugin call's flows as queue items of at most [`Self::MAX_FLOWS`]
    /// (one message's flows are never split): `runs` says how many flows,
    /// in order, each message's exporter sent. The common case, a call
    /// under the bound, moves `flows` into one item without a copy.
    pub fn items(consumer: usize, flows: PackedFlows, runs: &[(SocketAddr, usize)]) -> Vec<Self> {
        debug_assert_eq!(runs.iter().map(|r| r.1).sum::<usize>(), flows.len());
        let mut items = Vec::new();
        if flows.len() <= Self::MAX_FLOWS {
            let mut item = ParsedFlows::new(consumer);
            item.flows = flows;
            let mut end = 0;
            for &(exporter, n) in runs {
                end += n;
                item.add_run(exporter, end);
            }
            if !item.flows.is_empty() {
                items.push(item);
            }
            return items;
        }
        let mut rest = flows.records();
        let mut item = ParsedFlows::new(consumer);
        for &(exporter, n) in runs {
            if !item.flows.is_empty() && item.flows.len() + n > Self::MAX_FLOWS {
                items.push(std::mem::replace(&mut item, ParsedFlows::new(consumer)));
            }
            let (run, later) = rest.split_at(n);
            rest = later;
            item.flows.extend_from(run);
            item.add_run(exporter, item.flows.len());
        }
        if !item.flows.is_empty() {
            items.push(item);
        }
        items
    }

    /// The flows up to `end` not yet in a run came from `exporter`.
    fn add_run(&mut self, exporter: SocketAddr, end: usize) {
        match self.exporters.last_mut() {
            Some((last, last_end)) if *last == exporter => *last_end = end,
            Some((_, last_end)) if *last_end == end => {}
            None if end == 0 => {}
            _ => self.exporters.push((exporter, end)),
        }
    }

    /// The flows, each run with its exporter.
    pub fn by_exporter(&self) -> impl Iterator<Item = (SocketAddr, &[PackedRecord])> {
        let records = self.flows.records();
        let mut start = 0;
        self.exporters.iter().map(move |&(exporter, end)| {
            let run = &records[start..end];
            start = end;
            (exporter, run)
        })
    }

    /// What the item holds in memory, for the byte budget.
    pub fn size(&self) -> usize {
        self.flows.capacity_bytes()
            + self.exporters.capacity() * std::mem::size_of::<(SocketAddr, usize)>()
            + std::mem::size_of::<ParsedFlows>()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlink_flow::{Flow, FlowRef};

    #[test]
    fn a_shared_receipt_fires_once_every_share_is_done() {
        let (ack, mut rx) = Ack::new();
        let parts: Vec<Ack> = (0..3).map(|_| ack.share()).collect();
        ack.done();
        let mut parts = parts.into_iter();
        parts.next().unwrap().done();
        parts.next().unwrap().done();
        assert!(rx.try_recv().is_err(), "one share still out");
        parts.next().unwrap().done();
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn one_share_dropped_undone_fails_the_receipt() {
        let (ack, rx) = Ack::new();
        let part = ack.share();
        ack.done();
        drop(part);
        assert!(rx.blocking_recv().is_err());
    }

    fn flows(n: usize) -> PackedFlows {
        (0..n)
            .map(|i| Flow {
                src_port: i as u16,
                ..Flow::default()
            })
            .collect()
    }

    fn ports(flows: &PackedFlows) -> impl Iterator<Item = u16> + '_ {
        flows.records().iter().map(|r| FlowRef::new(r).src_port())
    }

    fn exporter(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 2055))
    }

    /// An item's runs, (exporter, flows), and the ports of its flows.
    type Shape = (Vec<(SocketAddr, usize)>, Vec<u16>);

    fn shape(items: &[ParsedFlows]) -> Vec<Shape> {
        items
            .iter()
            .map(|item| {
                let runs = item.by_exporter().map(|(e, f)| (e, f.len())).collect();
                (runs, ports(&item.flows).collect())
            })
            .collect()
    }

    #[test]
    fn a_call_under_the_bound_is_one_item_with_its_exporters_runs() {
        let (a, b) = (exporter(1), exporter(2));
        let items = ParsedFlows::items(0, flows(6), &[(a, 2), (a, 1), (b, 3)]);
        assert_eq!(
            shape(&items),
            vec![(vec![(a, 3), (b, 3)], vec![0, 1, 2, 3, 4, 5])]
        );
        assert!(ParsedFlows::items(0, PackedFlows::new(), &[]).is_empty());
    }

    #[test]
    fn a_call_over_the_bound_splits_between_messages_in_order() {
        let (a, b) = (exporter(1), exporter(2));
        let max = ParsedFlows::MAX_FLOWS;
        let runs = [(a, max - 1), (b, 2), (a, max + 5), (b, 1)];
        let total: usize = runs.iter().map(|r| r.1).sum();
        let items = ParsedFlows::items(0, flows(total), &runs);
        let runs_of: Vec<Vec<(SocketAddr, usize)>> =
            shape(&items).into_iter().map(|(runs, _)| runs).collect();
        // A message over the bound alone is one item of its own.
        assert_eq!(
            runs_of,
            vec![
                vec![(a, max - 1)],
                vec![(b, 2)],
                vec![(a, max + 5)],
                vec![(b, 1)]
            ]
        );
        let ports: Vec<u16> = items.iter().flat_map(|i| ports(&i.flows)).collect();
        assert_eq!(ports, (0..total).map(|i| i as u16).collect::<Vec<_>>());
    }
}

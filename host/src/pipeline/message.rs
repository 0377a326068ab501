//! Messages between stages.

use std::net::SocketAddr;

use flowlink_plugin_sdk::Flow;

use tokio::sync::oneshot;

use std::sync::Arc;

use crate::plugin::{ParserInstance, StreamId};

/// Bytes as a connector received them. Connectors never parse.
#[derive(Debug)]
pub struct RawMessage {
    /// Index into `Config::consumers`.
    pub consumer: usize,
    /// The exporter (UDP peer). Decides the worker, so one exporter's
    /// templates always meet the same parser session.
    pub exporter: SocketAddr,
    pub received_ms: u64,
    pub payload: Vec<u8>,
    /// The TCP connection it came over; `None` for datagrams.
    pub stream: Option<StreamId>,
    /// Fired once the message was parsed and its flows handed to the
    /// aggregator: sources that can replay (Kafka, CloudWatch, files)
    /// advance their resume point only then.
    pub ack: Option<Ack>,
}

/// The sending half of a message's delivery receipt. Dropped without
/// [`Ack::done`] (daemon stopped before the hand-off), the receiver sees
/// an error and the source does not advance.
#[derive(Debug)]
pub struct Ack(oneshot::Sender<()>);

impl Ack {
    pub fn new() -> (Ack, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Ack(tx), rx)
    }

    pub fn done(self) {
        let _ = self.0.send(());
    }
}

/// What parser workers receive. Control items travel in the same queue as
/// messages, so they take effect after every message queued before them.
pub enum WorkerInput {
    Message(RawMessage),
    /// A connection closed: its parser session (and templates) go too.
    StreamClosed {
        consumer: usize,
        stream: StreamId,
    },
    /// A consumer added by a reload: its session on this worker.
    OpenConsumer {
        consumer: usize,
        name: Arc<str>,
        session: Box<ParserInstance>,
    },
    /// A consumer's parser changed on reload: move to `session`, carrying
    /// the old session's state over when `carry_state` (same plugin).
    ReplaceSession {
        consumer: usize,
        session: Box<ParserInstance>,
        carry_state: bool,
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
            WorkerInput::Message(m) => f.debug_tuple("Message").field(m).finish(),
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
        name: String,
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

/// What a parser made of one message, on its way to the aggregator.
#[derive(Debug)]
pub struct ParsedFlows {
    pub consumer: usize,
    pub exporter: SocketAddr,
    pub flows: Vec<Flow>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

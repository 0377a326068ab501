//! Messages between stages.

use std::net::SocketAddr;

use flowlink_plugin_sdk::Flow;

use tokio::sync::oneshot;

use crate::plugin::StreamId;

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

/// What parser workers receive.
#[derive(Debug)]
pub enum WorkerInput {
    Message(RawMessage),
    /// A connection closed: its parser session (and templates) go too.
    StreamClosed {
        consumer: usize,
        stream: StreamId,
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

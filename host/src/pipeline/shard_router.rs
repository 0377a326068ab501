//! Sends each raw message to the parser worker that owns its exporter.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::RawMessage;
use crate::metrics::{self, Metrics};

#[derive(Clone)]
pub struct ShardRouter {
    workers: Vec<mpsc::Sender<RawMessage>>,
    metrics: Arc<Metrics>,
}

impl ShardRouter {
    pub fn new(workers: Vec<mpsc::Sender<RawMessage>>, metrics: Arc<Metrics>) -> Self {
        assert!(!workers.is_empty(), "at least one parser worker");
        ShardRouter { workers, metrics }
    }

    /// Hash of the exporter's address (not its port: some exporters change
    /// source port on restart but keep their templates' scope).
    pub fn shard_of(&self, message: &RawMessage) -> usize {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(message.exporter.ip());
        (hash % self.workers.len() as u64) as usize
    }

    /// Never waits: a datagram source cannot be paused, so a full queue
    /// drops the message and counts it.
    pub fn route(&self, message: RawMessage) {
        let counters = self.metrics.consumer(message.consumer);
        metrics::add(&counters.messages_in, 1);
        metrics::add(&counters.bytes_in, message.payload.len() as u64);
        let shard = self.shard_of(&message);
        match self.workers[shard].try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {
                metrics::add(&counters.queue_drops, 1);
            }
        }
    }
}

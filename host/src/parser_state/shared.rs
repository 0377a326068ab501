//! Parser state shared beyond this machine: the members of a Kafka group
//! (outlets behind a relay) publish their snapshots to a state topic, so
//! the member that takes over a partition restores the templates of its
//! exporters before it decodes their data.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Takes a worker's encoded snapshot (the snapshot file's bytes). Must
/// not block: workers call it between batches.
pub trait StateSink: Send + Sync {
    fn publish(&self, worker: usize, encoded: &[u8]);
}

/// The sinks by consumer name; a connector registers one while it runs.
#[derive(Default)]
pub struct StateSinks {
    sinks: RwLock<HashMap<String, Arc<dyn StateSink>>>,
}

impl StateSinks {
    pub fn register(&self, consumer: &str, sink: Arc<dyn StateSink>) {
        self.sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(consumer.to_owned(), sink);
    }

    pub fn unregister(&self, consumer: &str) {
        self.sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(consumer);
    }

    pub fn publish(&self, consumer: &str, worker: usize, encoded: &[u8]) {
        let sink = self
            .sinks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(consumer)
            .cloned();
        if let Some(sink) = sink {
            sink.publish(worker, encoded);
        }
    }
}

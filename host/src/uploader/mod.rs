//! The uploader: sends each window's batch to the PCE in the configured
//! wire format. Until the disk spool lands (issue #4) a batch the PCE cannot
//! take is retried in memory with backoff, then counted as dropped.

mod bulk_csv;
mod pce_client;

pub use bulk_csv::{BULK_CSV_MAX_LINES, bulk_csv_chunks};
pub use pce_client::PceClient;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::{self, Metrics};
use crate::proto::FlowBatch;

/// Attempts per batch before it is given up.
const MAX_ATTEMPTS: u32 = 6;

pub struct Uploader {
    client: PceClient,
    metrics: Arc<Metrics>,
}

impl Uploader {
    pub fn new(client: PceClient, metrics: Arc<Metrics>) -> Self {
        Uploader { client, metrics }
    }

    /// Runs until `input` closes and every batch received has been handled.
    pub async fn run(self, mut input: mpsc::Receiver<FlowBatch>) {
        while let Some(batch) = input.recv().await {
            self.deliver(batch).await;
        }
    }

    async fn deliver(&self, batch: FlowBatch) {
        let counters = &self.metrics.upload;
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.client.upload(&batch).await {
                Ok(()) => {
                    metrics::add(&counters.batches_uploaded, 1);
                    metrics::add(&counters.flows_uploaded, batch.flows.len() as u64);
                    tracing::info!(batch_id = %batch.batch_id, flows = batch.flows.len(), "batch uploaded");
                    return;
                }
                Err(error) => {
                    metrics::add(&counters.upload_failures, 1);
                    if !error.is_retryable() || attempt == MAX_ATTEMPTS {
                        metrics::add(&counters.batches_dropped, 1);
                        tracing::error!(
                            batch_id = %batch.batch_id,
                            flows = batch.flows.len(),
                            attempt,
                            "batch dropped: {error}"
                        );
                        return;
                    }
                    let wait = error.retry_after().unwrap_or(delay);
                    tracing::warn!(batch_id = %batch.batch_id, attempt, "upload failed, retrying in {wait:?}: {error}");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

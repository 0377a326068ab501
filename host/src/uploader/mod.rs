//! The uploader: sends each window's batch to the PCE in the configured
//! wire format. What the PCE cannot take now (connect errors, timeouts,
//! 408, 429, 5xx) goes to the disk spool and is sent later, oldest first;
//! what it refuses for good (other 4xx) is kept aside with its answer.

mod bulk_csv;
mod pce_client;

pub use bulk_csv::{BULK_CSV_MAX_LINES, BULK_CSV_VERSION_HEADER, bulk_csv_chunks};
pub use pce_client::PceClient;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{self, Metrics};
use crate::proto::FlowBatch;
use crate::spool::Spool;
use pce_client::UploadError;

pub struct Uploader {
    client: PceClient,
    metrics: Arc<Metrics>,
    spool: Spool,
    /// `spool_retry_seconds`: the pause after a retryable failure (longer
    /// when the PCE asks for it with Retry-After).
    retry_every: Duration,
    next_retry: Instant,
}

impl Uploader {
    pub fn new(
        client: PceClient,
        metrics: Arc<Metrics>,
        spool: Spool,
        retry_every: Duration,
    ) -> Self {
        // Whatever an earlier run spooled is tried at once.
        Uploader {
            client,
            metrics,
            spool,
            retry_every,
            next_retry: Instant::now(),
        }
    }

    /// Runs until `input` closes. On the way out nothing is lost: a batch
    /// not acknowledged by then is in the spool for the next run.
    pub async fn run(mut self, mut input: mpsc::Receiver<FlowBatch>) {
        loop {
            let spooled = !self.spool.is_empty();
            tokio::select! {
                biased;
                batch = input.recv() => match batch {
                    Some(batch) => self.accept(batch).await,
                    None => break,
                },
                () = sleep_until(self.next_retry), if spooled => self.drain().await,
            }
        }
        if !self.spool.is_empty() {
            tracing::info!(
                batches = self.spool.len(),
                "stopping with batches in the spool; they are sent on the next start"
            );
        }
    }

    /// A new window: sent now if nothing older is waiting, else queued
    /// behind what is, so the PCE sees windows in order.
    async fn accept(&mut self, batch: FlowBatch) {
        if self.spool.is_empty() {
            match self.client.upload(&batch).await {
                Ok(()) => return self.uploaded(&batch),
                Err(error) if error.is_retryable() => self.failed(&batch, &error),
                Err(error) => return self.refused(&batch, None, &error),
            }
        }
        if let Err(e) = self.spool.push(&batch) {
            metrics::add(&self.metrics.upload.batches_dropped, 1);
            tracing::error!(batch_id = %batch.batch_id, flows = batch.flows.len(), "batch lost: cannot write the spool: {e:#}");
        }
    }

    /// Sends spooled batches oldest first until one fails.
    async fn drain(&mut self) {
        while let Some(entry) = self.spool.oldest() {
            match self.client.upload(&entry.batch).await {
                Ok(()) => {
                    self.uploaded(&entry.batch);
                    metrics::add(&self.metrics.upload.batches_replayed, 1);
                    self.spool.remove(&entry.name);
                }
                Err(error) if error.is_retryable() => {
                    self.failed(&entry.batch, &error);
                    return;
                }
                Err(error) => self.refused(&entry.batch, Some(&entry.name), &error),
            }
        }
        tracing::info!("spool drained");
    }

    fn uploaded(&self, batch: &FlowBatch) {
        metrics::add(&self.metrics.upload.batches_uploaded, 1);
        metrics::add(
            &self.metrics.upload.flows_uploaded,
            batch.flows.len() as u64,
        );
        tracing::info!(batch_id = %batch.batch_id, flows = batch.flows.len(), "batch uploaded");
    }

    fn failed(&mut self, batch: &FlowBatch, error: &UploadError) {
        metrics::add(&self.metrics.upload.upload_failures, 1);
        let wait = error
            .retry_after()
            .map_or(self.retry_every, |asked| asked.max(self.retry_every));
        self.next_retry = Instant::now() + wait;
        tracing::warn!(batch_id = %batch.batch_id, "upload failed, spooled; next try in {wait:?}: {error}");
    }

    fn refused(&mut self, batch: &FlowBatch, spooled: Option<&str>, error: &UploadError) {
        metrics::add(&self.metrics.upload.upload_failures, 1);
        tracing::error!(
            batch_id = %batch.batch_id,
            flows = batch.flows.len(),
            "the PCE refused the batch; kept in data_directory/rejected/: {error}"
        );
        if let Err(e) = self.spool.set_aside(batch, spooled, &error.to_string()) {
            metrics::add(&self.metrics.upload.batches_dropped, 1);
            tracing::error!(batch_id = %batch.batch_id, "batch lost: cannot keep it aside: {e:#}");
        }
    }
}

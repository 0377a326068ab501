//! The uploader: sends each window's batch to the PCE in the configured
//! wire format. What the PCE cannot take now (connect errors, timeouts,
//! 408, 429, 5xx) goes to the disk spool and is sent later, oldest first;
//! what it refuses for good (other 4xx) is kept aside with its answer.

mod bulk_csv;
mod pce_client;

pub use bulk_csv::{BULK_CSV_MAX_LINES, BULK_CSV_VERSION_HEADER, bulk_csv_chunks};
pub use pce_client::{PceClient, UploadError};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{self, Metrics};
use crate::pipeline::Ack;
use crate::proto::FlowBatch;
use crate::spool::Spool;

/// A batch on its way to the PCE, with what hangs on it becoming durable.
pub struct UploadJob {
    pub batch: FlowBatch,
    /// Receipts of the records in the batch: fired once it is uploaded,
    /// spooled or set aside, so replayable sources advance only then.
    pub acks: Vec<Ack>,
    /// The window's checkpoint file, removed once the batch is durable.
    pub checkpoint: Option<PathBuf>,
    /// Sent while the daemon stops: an upload the PCE does not answer
    /// within `shutdown_upload_seconds` is spooled instead.
    pub at_shutdown: bool,
}

impl UploadJob {
    pub fn new(batch: FlowBatch) -> Self {
        UploadJob {
            batch,
            acks: Vec::new(),
            checkpoint: None,
            at_shutdown: false,
        }
    }
}

pub struct Uploader {
    client: PceClient,
    metrics: Arc<Metrics>,
    spool: Spool,
    /// `spool_retry_seconds`: the pause after a retryable failure (longer
    /// when the PCE asks for it with Retry-After).
    retry_every: Duration,
    /// `shutdown_upload_seconds`: how long a stop waits for the PCE.
    shutdown_upload: Duration,
    next_retry: Instant,
}

impl Uploader {
    pub fn new(
        client: PceClient,
        metrics: Arc<Metrics>,
        spool: Spool,
        retry_every: Duration,
        shutdown_upload: Duration,
    ) -> Self {
        // Whatever an earlier run spooled is tried at once.
        Uploader {
            client,
            metrics,
            spool,
            retry_every,
            shutdown_upload,
            next_retry: Instant::now(),
        }
    }

    /// Runs until `input` closes. On the way out nothing is lost: a batch
    /// not acknowledged by then is in the spool for the next run.
    pub async fn run(mut self, mut input: mpsc::Receiver<UploadJob>) {
        loop {
            let spooled = !self.spool.is_empty();
            tokio::select! {
                biased;
                job = input.recv() => match job {
                    Some(job) => self.accept(job).await,
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
    /// behind what is, so the PCE sees windows in order. Once the batch is
    /// durable (at the PCE, in the spool, or set aside) its receipts fire
    /// and its window checkpoint goes.
    async fn accept(&mut self, job: UploadJob) {
        let UploadJob {
            batch,
            acks,
            checkpoint,
            at_shutdown,
        } = job;
        if self.deliver(&batch, at_shutdown).await {
            acks.into_iter().for_each(Ack::done);
            if let Some(path) = checkpoint {
                let _ = tokio::fs::remove_file(path).await;
            }
        }
    }

    /// Whether the batch is durable now.
    async fn deliver(&mut self, batch: &FlowBatch, at_shutdown: bool) -> bool {
        if self.spool.is_empty() {
            let upload = self.client.upload(batch);
            let result = if at_shutdown {
                tokio::time::timeout(self.shutdown_upload, upload)
                    .await
                    .unwrap_or_else(|_| {
                        Err(UploadError::Transport(format!(
                            "no answer within shutdown_upload_seconds ({} s) while stopping",
                            self.shutdown_upload.as_secs()
                        )))
                    })
            } else {
                upload.await
            };
            match result {
                Ok(()) => {
                    self.uploaded(batch);
                    return true;
                }
                Err(error) if error.is_retryable() => self.failed(batch, &error),
                Err(error) => return self.refused(batch, None, &error),
            }
        }
        // Spool I/O fsyncs: off the runtime's scheduling.
        let pushed = tokio::task::block_in_place(|| self.spool.push(batch));
        match pushed {
            Ok(()) => true,
            Err(e) => {
                metrics::add(&self.metrics.upload.batches_dropped, 1);
                tracing::error!(batch_id = %batch.batch_id, flows = batch.flows.len(), "batch lost: cannot write the spool: {e:#}");
                false
            }
        }
    }

    /// Sends spooled batches oldest first until one fails.
    async fn drain(&mut self) {
        while let Some(entry) = tokio::task::block_in_place(|| self.spool.oldest()) {
            match self.client.upload(&entry.batch).await {
                Ok(()) => {
                    self.uploaded(&entry.batch);
                    metrics::add(&self.metrics.upload.batches_replayed, 1);
                    tokio::task::block_in_place(|| self.spool.remove(&entry.name));
                }
                Err(error) if error.is_retryable() => {
                    self.failed(&entry.batch, &error);
                    return;
                }
                Err(error) => {
                    self.refused(&entry.batch, Some(&entry.name), &error);
                }
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

    /// Keeps a refused batch aside; whether it is on disk now.
    fn refused(&mut self, batch: &FlowBatch, spooled: Option<&str>, error: &UploadError) -> bool {
        metrics::add(&self.metrics.upload.upload_failures, 1);
        tracing::error!(
            batch_id = %batch.batch_id,
            flows = batch.flows.len(),
            "the PCE refused the batch; kept in data_directory/rejected/: {error}"
        );
        let kept = tokio::task::block_in_place(|| {
            self.spool.set_aside(batch, spooled, &error.to_string())
        });
        if let Err(e) = kept {
            metrics::add(&self.metrics.upload.batches_dropped, 1);
            tracing::error!(batch_id = %batch.batch_id, "batch lost: cannot keep it aside: {e:#}");
            return false;
        }
        true
    }
}

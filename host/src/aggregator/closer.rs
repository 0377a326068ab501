//! Closing windows: a window's key map becomes a batch (a fifth of a
//! second at a million keys) on a blocking thread, in the order windows
//! closed, while the aggregator goes on folding the next window's records.

use tokio::sync::mpsc;

use super::{Window, WindowCheckpoints};
use crate::pipeline::Ack;
use crate::uploader::UploadJob;

/// Windows waiting to be turned into batches. One: each may hold a
/// million keys, and a slow uploader should hold the aggregator back, not
/// pile windows up in memory.
pub const CLOSER_QUEUE: usize = 1;

/// A window the aggregator has closed, with what hangs on it.
pub struct ClosedWindow {
    pub window: Window,
    pub consumer: String,
    pub end_ms: u64,
    /// Receipts of the records that came since the last checkpoint.
    pub acks: Vec<Ack>,
    pub at_shutdown: bool,
}

/// Runs until every sender is gone, handing each batch to the uploader.
pub async fn run(
    mut input: mpsc::Receiver<ClosedWindow>,
    checkpoints: WindowCheckpoints,
    output: mpsc::Sender<UploadJob>,
) {
    while let Some(closed) = input.recv().await {
        let ClosedWindow {
            window,
            consumer,
            end_ms,
            acks,
            at_shutdown,
        } = closed;
        let batch =
            match tokio::task::spawn_blocking(move || window.into_batch(&consumer, end_ms)).await {
                Ok(batch) => batch,
                Err(e) => {
                    // The receipts are dropped undone: their sources replay.
                    tracing::error!("closing a window failed (a bug): {e}");
                    continue;
                }
            };
        tracing::info!(
            consumer = %batch.consumer,
            flows = batch.flows.len(),
            batch_id = %batch.batch_id,
            "window closed"
        );
        let checkpoint = Some(checkpoints.path_of(&batch));
        let job = UploadJob {
            batch,
            acks,
            checkpoint,
            at_shutdown,
        };
        // Waits when the uploader is behind: backpressure, not loss.
        if output.send(job).await.is_err() {
            tracing::error!("uploader stopped; a window could not be handed over");
        }
    }
}

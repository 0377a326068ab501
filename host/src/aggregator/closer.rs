//! Closing and checkpointing windows off the aggregator: a closed
//! window's key map becomes a batch (a fifth of a second at a million
//! keys), and a checkpoint is encoded and fsynced, on blocking threads, in
//! the order the aggregator handed them over, while it goes on folding
//! records.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::{Window, WindowCheckpoints};
use crate::pipeline::Ack;
use crate::proto::FlowBatch;
use crate::uploader::UploadJob;

/// Jobs waiting for the closer. One: a job may hold a million keys, and a
/// slow disk or uploader should hold the aggregator back, not pile
/// windows up in memory.
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

pub enum CloserJob {
    /// The window so far (`None`: nothing new since the last checkpoint)
    /// with the flag to raise if it cannot be written (the aggregator then
    /// writes it again next round), and the receipts of the records that
    /// came since.
    Checkpoint {
        consumer: String,
        batch: Option<(FlowBatch, Arc<AtomicBool>)>,
        acks: Vec<Ack>,
    },
    Close(ClosedWindow),
}

/// Runs until every sender is gone, handing each closed window's batch to
/// the uploader.
pub async fn run(
    mut input: mpsc::Receiver<CloserJob>,
    checkpoints: WindowCheckpoints,
    output: mpsc::Sender<UploadJob>,
) {
    // By consumer: receipts whose checkpoint could not be written. They
    // fire with the next checkpoint that is, or go with the window's upload.
    let mut unwritten: HashMap<String, Vec<Ack>> = HashMap::new();
    while let Some(job) = input.recv().await {
        match job {
            CloserJob::Checkpoint {
                consumer,
                batch,
                acks,
            } => {
                if let Some((batch, failed)) = batch {
                    let checkpoints = checkpoints.clone();
                    let written = tokio::task::spawn_blocking(move || checkpoints.write(&batch))
                        .await
                        .map_err(anyhow::Error::from)
                        .and_then(|r| r);
                    if let Err(e) = written {
                        tracing::error!(
                            %consumer,
                            "cannot write the window checkpoint: {e:#}; tried again next round, its receipts wait until then or for the window's upload"
                        );
                        failed.store(true, Ordering::Relaxed);
                        unwritten.entry(consumer).or_default().extend(acks);
                        continue;
                    }
                    // On disk: the receipts that waited on an earlier
                    // checkpoint are covered by this one.
                    unwritten
                        .remove(&consumer)
                        .into_iter()
                        .flatten()
                        .for_each(Ack::done);
                }
                // Without a batch these are receipts of messages that gave
                // no flows since the last checkpoint: nothing to keep.
                acks.into_iter().for_each(Ack::done);
            }
            CloserJob::Close(mut closed) => {
                if let Some(mut earlier) = unwritten.remove(&closed.consumer) {
                    earlier.append(&mut closed.acks);
                    closed.acks = earlier;
                }
                close(closed, &checkpoints, &output).await;
            }
        }
    }
}

/// Turns the window into a batch and hands it to the uploader.
async fn close(
    closed: ClosedWindow,
    checkpoints: &WindowCheckpoints,
    output: &mpsc::Sender<UploadJob>,
) {
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
                return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::DirectionInference;
    use crate::config::DirectionRule;
    use flowlink_flow::{Flow, IpAddr as WitIp};

    fn window_of_one_key() -> Window {
        let flow = Flow {
            src: WitIp::V4(0x0a00_0001),
            dst: WitIp::V4(0x0a00_0002),
            src_port: 40000,
            dst_port: 443,
            protocol: 6,
            packets: 1,
            bytes: 100,
            ..Flow::default()
        };
        let mut window = Window::new(0);
        let off = DirectionInference::new(DirectionRule::Off, &[]);
        window.add(&flow, "192.0.2.1".parse().unwrap(), &off);
        window
    }

    #[tokio::test]
    async fn receipts_of_an_unwritten_checkpoint_go_with_the_window() {
        let (jobs, input) = mpsc::channel(4);
        let (output, mut uploads) = mpsc::channel(4);
        // Under a regular file: no directory can be made there.
        let checkpoints = WindowCheckpoints::new(std::path::Path::new("/dev/null/flowlink"));
        let closer = tokio::spawn(run(input, checkpoints, output));
        let mut window = window_of_one_key();
        let failed = window.checkpointed();
        let (ack, mut receipt) = Ack::new();
        let checkpoint = CloserJob::Checkpoint {
            consumer: "edge".into(),
            batch: Some((window.to_batch("edge", 1), failed.clone())),
            acks: vec![ack],
        };
        jobs.send(checkpoint).await.unwrap();
        let close = CloserJob::Close(ClosedWindow {
            window,
            consumer: "edge".into(),
            end_ms: 2,
            acks: Vec::new(),
            at_shutdown: false,
        });
        jobs.send(close).await.unwrap();
        let upload = uploads.recv().await.expect("the window's batch");
        assert!(
            failed.load(Ordering::Relaxed),
            "the aggregator is told to write it again"
        );
        assert_eq!(upload.batch.flows.len(), 1);
        assert!(receipt.try_recv().is_err(), "fired without being on disk");
        assert_eq!(upload.acks.len(), 1, "the receipt travels with the upload");
        upload.acks.into_iter().for_each(Ack::done);
        assert!(receipt.try_recv().is_ok());
        drop(jobs);
        closer.await.unwrap();
    }
}

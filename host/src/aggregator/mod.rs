//! The aggregator: folds flow records into one entry per traffic key for
//! each consumer, and hands a batch to the uploader at every window boundary.

mod checkpoint;
mod direction;
mod flow_key;
mod window;

pub use checkpoint::WindowCheckpoints;

pub use direction::DirectionInference;
pub use flow_key::FlowKey;
pub use window::Window;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{self, Metrics};
use crate::pipeline::{Ack, AggregatorInput, ParsedFlows, now_ms};
use crate::uploader::UploadJob;

/// How windows are cut, keyed and kept on disk.
pub struct WindowSettings {
    pub window_len: Duration,
    pub max_keys: usize,
    pub direction: DirectionInference,
    pub checkpoints: WindowCheckpoints,
    pub checkpoint_every: Duration,
}

pub struct Aggregator {
    /// By consumer slot; a removed consumer's slot stays, empty.
    consumer_names: Vec<String>,
    windows: Vec<Option<Window>>,
    window_len: Duration,
    max_keys: usize,
    direction: DirectionInference,
    metrics: Arc<Metrics>,
    output: mpsc::Sender<UploadJob>,
    checkpoints: WindowCheckpoints,
    checkpoint_every: Duration,
    /// By slot: receipts of the records in the window since its last
    /// checkpoint.
    acks: Vec<Vec<Ack>>,
}

impl Aggregator {
    pub fn new(
        consumer_names: Vec<String>,
        settings: WindowSettings,
        metrics: Arc<Metrics>,
        output: mpsc::Sender<UploadJob>,
    ) -> Self {
        let WindowSettings {
            window_len,
            max_keys,
            direction,
            checkpoints,
            checkpoint_every,
        } = settings;
        let start = window_start(now_ms(), window_len);
        let windows = consumer_names
            .iter()
            .map(|_| Some(Window::new(start)))
            .collect();
        let acks = consumer_names.iter().map(|_| Vec::new()).collect();
        Aggregator {
            consumer_names,
            windows,
            window_len,
            max_keys,
            direction,
            metrics,
            output,
            checkpoints,
            checkpoint_every,
            acks,
        }
    }

    /// Runs until `input` closes (every worker has stopped), then flushes the
    /// open windows so a shutdown loses nothing.
    pub async fn run(mut self, mut input: mpsc::Receiver<AggregatorInput>) {
        let mut next_checkpoint = Instant::now() + self.checkpoint_every;
        loop {
            let boundary = self.next_boundary();
            tokio::select! {
                () = sleep_until(next_checkpoint) => {
                    self.checkpoint_all().await;
                    next_checkpoint = Instant::now() + self.checkpoint_every;
                }
                message = input.recv() => match message {
                    Some(AggregatorInput::Flows(parsed)) => self.add(parsed).await,
                    Some(AggregatorInput::Acks { consumer, acks }) => {
                        if let Some(pending) = self.acks.get_mut(consumer) {
                            pending.extend(acks);
                        }
                    }
                    Some(AggregatorInput::ConsumerAdded { consumer, name }) => {
                        self.open(consumer, name)
                    }
                    Some(AggregatorInput::ConsumerRemoved { consumer }) => {
                        self.flush(consumer, false).await;
                        if let Some(window) = self.windows.get_mut(consumer) {
                            *window = None;
                        }
                    }
                    None => break,
                },
                () = sleep_until(boundary) => self.flush_all(false).await,
            }
        }
        self.flush_all(true).await;
    }

    /// Writes every window that changed since its last checkpoint, then
    /// fires the receipts of the records in it: their aggregate is on disk.
    async fn checkpoint_all(&mut self) {
        let now = now_ms();
        for consumer in 0..self.windows.len() {
            let Some(Some(window)) = self.windows.get_mut(consumer) else {
                continue;
            };
            if window.is_dirty() {
                let batch = window.to_batch(&self.consumer_names[consumer], now);
                let checkpoints = self.checkpoints.clone();
                let written = tokio::task::spawn_blocking(move || checkpoints.write(&batch))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| r);
                if let Err(e) = written {
                    // Receipts wait for the window's upload instead.
                    tracing::error!(
                        consumer = %self.consumer_names[consumer],
                        "cannot write the window checkpoint: {e:#}"
                    );
                    continue;
                }
                window.checkpointed();
            }
            std::mem::take(&mut self.acks[consumer])
                .into_iter()
                .for_each(Ack::done);
        }
    }

    /// Windows are aligned to the clock (a 10-minute window ends at :00,
    /// :10, …), as FlowLink's are.
    fn next_boundary(&self) -> Instant {
        let now = now_ms();
        let len = self.window_len.as_millis() as u64;
        let end = window_start(now, self.window_len) + len;
        Instant::now() + Duration::from_millis(end.saturating_sub(now))
    }

    /// A consumer added by a reload: its window starts now.
    fn open(&mut self, consumer: usize, name: String) {
        if self.windows.len() <= consumer {
            self.windows.resize_with(consumer + 1, || None);
            self.consumer_names.resize(consumer + 1, String::new());
            self.acks.resize_with(consumer + 1, Vec::new);
        }
        self.windows[consumer] = Some(Window::new(window_start(now_ms(), self.window_len)));
        self.consumer_names[consumer] = name;
    }

    async fn add(&mut self, parsed: ParsedFlows) {
        let consumer = parsed.consumer;
        let counters = self.metrics.consumer(consumer);
        metrics::add(&counters.flows_aggregated, parsed.flows.len() as u64);
        if !matches!(self.windows.get(consumer), Some(Some(_))) {
            tracing::error!(
                slot = consumer,
                flows = parsed.flows.len(),
                "flows for a consumer without a window (a bug): dropped"
            );
            return;
        }
        // The key bound is checked per record: one item holds a whole
        // plugin call's flows, more than the bound's slack should be.
        for (exporter, flows) in parsed.by_exporter() {
            let exporter = exporter.ip();
            for flow in flows {
                let Some(Some(window)) = self.windows.get_mut(consumer) else {
                    return;
                };
                window.add(flow, exporter, &self.direction);
                if window.len() > self.max_keys {
                    metrics::add(&counters.aggregation_early_flushes, 1);
                    tracing::warn!(
                        consumer = %self.consumer_names[consumer],
                        keys = window.len(),
                        "aggregation_max_keys reached: flushing the window early"
                    );
                    self.flush(consumer, false).await;
                }
            }
        }
        // Merged: the flows' room in the queue goes back to the workers.
        let ParsedFlows {
            flows, bytes, acks, ..
        } = parsed;
        drop((flows, bytes));
        // The receipts join the window that holds the item's last records.
        self.acks[consumer].extend(acks);
    }

    async fn flush_all(&mut self, at_shutdown: bool) {
        for consumer in 0..self.windows.len() {
            self.flush(consumer, at_shutdown).await;
        }
    }

    /// Closes a window: its batch goes to the uploader with the receipts
    /// and checkpoint file that wait on it.
    async fn flush(&mut self, consumer: usize, at_shutdown: bool) {
        let now = now_ms();
        let Some(Some(open)) = self.windows.get_mut(consumer) else {
            return;
        };
        let window = std::mem::replace(open, Window::new(window_start(now, self.window_len)));
        let acks = std::mem::take(&mut self.acks[consumer]);
        if window.is_empty() {
            // Receipts of messages that gave no flows: nothing to keep.
            acks.into_iter().for_each(Ack::done);
            return;
        }
        // A million keys take a fifth of a second to close: off the
        // runtime's scheduling, so receive tasks keep running meanwhile.
        let name = &self.consumer_names[consumer];
        let batch = crate::blocking::off_the_runtime(|| window.into_batch(name, now));
        tracing::info!(
            consumer = %self.consumer_names[consumer],
            flows = batch.flows.len(),
            batch_id = %batch.batch_id,
            "window closed"
        );
        let checkpoint = Some(self.checkpoints.path_of(&batch));
        let job = UploadJob {
            batch,
            acks,
            checkpoint,
            at_shutdown,
        };
        // Waits when the uploader is behind: backpressure, not loss.
        if self.output.send(job).await.is_err() {
            tracing::error!("uploader stopped; a window could not be handed over");
        }
    }
}

fn window_start(now_ms: u64, len: Duration) -> u64 {
    let len = len.as_millis().max(1) as u64;
    now_ms - now_ms % len
}

//! The aggregator: folds flow records into one entry per traffic key for
//! each consumer, and hands a batch to the uploader at every window boundary.

mod direction;
mod flow_key;
mod window;

pub use direction::DirectionInference;
pub use flow_key::FlowKey;
pub use window::Window;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{self, Metrics};
use crate::pipeline::{AggregatorInput, ParsedFlows, now_ms};
use crate::proto::FlowBatch;

pub struct Aggregator {
    /// By consumer slot; a removed consumer's slot stays, empty.
    consumer_names: Vec<String>,
    windows: Vec<Option<Window>>,
    window_len: Duration,
    max_keys: usize,
    direction: DirectionInference,
    metrics: Arc<Metrics>,
    output: mpsc::Sender<FlowBatch>,
}

impl Aggregator {
    pub fn new(
        consumer_names: Vec<String>,
        window_len: Duration,
        max_keys: usize,
        direction: DirectionInference,
        metrics: Arc<Metrics>,
        output: mpsc::Sender<FlowBatch>,
    ) -> Self {
        let start = window_start(now_ms(), window_len);
        let windows = consumer_names
            .iter()
            .map(|_| Some(Window::new(start)))
            .collect();
        Aggregator {
            consumer_names,
            windows,
            window_len,
            max_keys,
            direction,
            metrics,
            output,
        }
    }

    /// Runs until `input` closes (every worker has stopped), then flushes the
    /// open windows so a shutdown loses nothing.
    pub async fn run(mut self, mut input: mpsc::Receiver<AggregatorInput>) {
        loop {
            let boundary = self.next_boundary();
            tokio::select! {
                message = input.recv() => match message {
                    Some(AggregatorInput::Flows(parsed)) => self.add(parsed).await,
                    Some(AggregatorInput::ConsumerAdded { consumer, name }) => {
                        self.open(consumer, name)
                    }
                    Some(AggregatorInput::ConsumerRemoved { consumer }) => {
                        self.flush(consumer).await;
                        if let Some(window) = self.windows.get_mut(consumer) {
                            *window = None;
                        }
                    }
                    None => break,
                },
                () = sleep_until(boundary) => self.flush_all().await,
            }
        }
        self.flush_all().await;
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
        }
        self.windows[consumer] = Some(Window::new(window_start(now_ms(), self.window_len)));
        self.consumer_names[consumer] = name;
    }

    async fn add(&mut self, parsed: ParsedFlows) {
        let counters = self.metrics.consumer(parsed.consumer);
        metrics::add(&counters.flows_aggregated, parsed.flows.len() as u64);
        let Some(Some(window)) = self.windows.get_mut(parsed.consumer) else {
            tracing::error!(
                slot = parsed.consumer,
                flows = parsed.flows.len(),
                "flows for a consumer without a window (a bug): dropped"
            );
            return;
        };
        for flow in &parsed.flows {
            window.add(flow, parsed.exporter.ip(), &self.direction);
        }
        if window.len() > self.max_keys {
            metrics::add(&counters.aggregation_early_flushes, 1);
            tracing::warn!(
                consumer = %self.consumer_names[parsed.consumer],
                keys = window.len(),
                "aggregation_max_keys reached: flushing the window early"
            );
            self.flush(parsed.consumer).await;
        }
    }

    async fn flush_all(&mut self) {
        for consumer in 0..self.windows.len() {
            self.flush(consumer).await;
        }
    }

    async fn flush(&mut self, consumer: usize) {
        let now = now_ms();
        let Some(Some(open)) = self.windows.get_mut(consumer) else {
            return;
        };
        let window = std::mem::replace(open, Window::new(window_start(now, self.window_len)));
        if window.is_empty() {
            return;
        }
        let batch = window.into_batch(&self.consumer_names[consumer], now);
        tracing::info!(
            consumer = %self.consumer_names[consumer],
            flows = batch.flows.len(),
            batch_id = %batch.batch_id,
            "window closed"
        );
        // Waits when the uploader is behind: backpressure, not loss.
        if self.output.send(batch).await.is_err() {
            tracing::error!("uploader stopped; a window could not be handed over");
        }
    }
}

fn window_start(now_ms: u64, len: Duration) -> u64 {
    let len = len.as_millis().max(1) as u64;
    now_ms - now_ms % len
}

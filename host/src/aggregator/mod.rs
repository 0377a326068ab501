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
use crate::pipeline::{ParsedFlows, now_ms};
use crate::proto::FlowBatch;

pub struct Aggregator {
    consumer_names: Vec<String>,
    windows: Vec<Window>,
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
        let windows = consumer_names.iter().map(|_| Window::new(start)).collect();
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
    pub async fn run(mut self, mut input: mpsc::Receiver<ParsedFlows>) {
        loop {
            let boundary = self.next_boundary();
            tokio::select! {
                message = input.recv() => match message {
                    Some(parsed) => self.add(parsed).await,
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

    async fn add(&mut self, parsed: ParsedFlows) {
        let counters = self.metrics.consumer(parsed.consumer);
        metrics::add(&counters.flows_aggregated, parsed.flows.len() as u64);
        let window = &mut self.windows[parsed.consumer];
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
        let next = Window::new(window_start(now, self.window_len));
        let window = std::mem::replace(&mut self.windows[consumer], next);
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

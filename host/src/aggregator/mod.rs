//! The aggregator: folds flow records into one entry per traffic key for
//! each consumer, and hands a batch to the uploader at every window boundary.

mod checkpoint;
mod closer;
mod direction;
mod flow_key;
mod key_table;
mod prefault;
mod window;

pub use checkpoint::WindowCheckpoints;

pub use direction::DirectionInference;
pub use flow_key::FlowKey;
pub use window::Window;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{self, Metrics};
use crate::pipeline::{Ack, AggregatorInput, ParsedFlows, now_ms};
use crate::uploader::UploadJob;
use closer::{ClosedWindow, CloserJob};

/// How windows are cut, keyed and kept on disk.
pub struct WindowSettings {
    pub window_len: Duration,
    pub max_keys: usize,
    pub direction: DirectionInference,
    pub checkpoints: WindowCheckpoints,
    pub checkpoint_every: Duration,
}

/// A consumer as the aggregator sees it.
#[derive(Debug, Clone, Default)]
pub struct WindowOwner {
    pub name: String,
    /// Whether its windows are checkpointed and its receipts fire then;
    /// if not, they fire when the window is uploaded (its source keeps the
    /// records until then: `kafka.commit: upload`).
    pub checkpointed: bool,
}

impl WindowOwner {
    pub fn of(consumer: &crate::config::ConsumerConfig) -> Self {
        WindowOwner {
            name: consumer.name.clone(),
            checkpointed: consumer.checkpoints_windows(),
        }
    }
}

pub struct Aggregator {
    /// By consumer slot; a removed consumer's slot stays, empty.
    owners: Vec<WindowOwner>,
    windows: Vec<Option<Window>>,
    window_len: Duration,
    max_keys: usize,
    direction: DirectionInference,
    metrics: Arc<Metrics>,
    /// Closes windows and writes checkpoints, handing batches to the
    /// uploader.
    closer: mpsc::Sender<CloserJob>,
    closer_task: JoinHandle<()>,
    checkpoint_every: Duration,
    /// By slot: receipts of the records in the window since its last
    /// checkpoint.
    acks: Vec<Vec<Ack>>,
}

impl Aggregator {
    /// Starts the window closer, so it must be called on the runtime.
    pub fn new(
        owners: Vec<WindowOwner>,
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
        let windows = owners.iter().map(|_| Some(Window::new(start))).collect();
        let acks = owners.iter().map(|_| Vec::new()).collect();
        let (closer, jobs) = mpsc::channel(closer::CLOSER_QUEUE);
        let closer_task = tokio::spawn(closer::run(jobs, checkpoints, output));
        Aggregator {
            owners,
            windows,
            window_len,
            max_keys,
            direction,
            metrics,
            closer,
            closer_task,
            checkpoint_every,
            acks,
        }
    }

    /// Runs [`Aggregator::run`] on a thread of its own (`aggregator`), on a
    /// single-threaded runtime; the receiver fires once it has returned.
    /// On the shared multi-threaded runtime each parsed batch from a worker
    /// thread woke a runtime thread, and often a second one to steal: at
    /// 50k datagrams/s the runtime switched ~1,500 times a second, the
    /// largest cost left around the parser. Here one thread wakes per
    /// batch. Its blocking work (encoding a checkpoint) stalls only itself;
    /// the closer stays on the caller's runtime.
    pub fn spawn(
        self,
        input: mpsc::Receiver<AggregatorInput>,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        let (finished, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("aggregator".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a timer-only runtime builds");
                runtime.block_on(self.run(input));
                let _ = finished.send(());
            })?;
        Ok(done)
    }

    /// Runs until `input` closes (every worker has stopped), then flushes the
    /// open windows so a shutdown loses nothing, and returns once the last
    /// batch is with the uploader.
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
                    Some(AggregatorInput::ConsumerAdded { consumer, owner }) => {
                        self.open(consumer, owner)
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
        let Aggregator {
            closer,
            closer_task,
            ..
        } = self;
        drop(closer);
        let _ = closer_task.await;
    }

    /// Hands the closer every window that changed since its last
    /// checkpoint, as a batch, with the receipts of the records in it: the
    /// closer writes it (encoding and fsync off this task) and fires them
    /// once their aggregate is on disk.
    async fn checkpoint_all(&mut self) {
        let now = now_ms();
        for consumer in 0..self.windows.len() {
            let Some(Some(window)) = self.windows.get_mut(consumer) else {
                continue;
            };
            // Its receipts wait for the upload; its source replays the rest.
            if !self.owners[consumer].checkpointed {
                continue;
            }
            let name = &self.owners[consumer].name;
            let mut failed = None;
            let batch = window.needs_checkpoint().then(|| {
                failed = Some(window.checkpointed());
                crate::blocking::off_the_runtime(|| window.to_batch(name, now))
            });
            let acks = std::mem::take(&mut self.acks[consumer]);
            if batch.is_none() && acks.is_empty() {
                continue;
            }
            let job = CloserJob::Checkpoint {
                consumer: name.clone(),
                batch: batch.zip(failed),
                acks,
            };
            self.to_closer(job).await;
        }
    }

    /// Waits when the closer (or the uploader behind it) is behind.
    async fn to_closer(&self, job: CloserJob) {
        if self.closer.send(job).await.is_err() {
            tracing::error!("window closer stopped; a window could not be handed over");
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
    fn open(&mut self, consumer: usize, owner: WindowOwner) {
        if self.windows.len() <= consumer {
            self.windows.resize_with(consumer + 1, || None);
            self.owners.resize(consumer + 1, WindowOwner::default());
            self.acks.resize_with(consumer + 1, Vec::new);
        }
        self.windows[consumer] = Some(Window::new(window_start(now_ms(), self.window_len)));
        self.owners[consumer] = owner;
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
        // The key bound holds per record (one item holds a whole plugin
        // call's flows): a window is flushed as soon as it holds
        // `max_keys`. A record adds at most one key, so a window with room
        // for n more takes the next n at once, and only the last of them
        // can fill it.
        for (exporter, flows) in parsed.by_exporter() {
            let exporter = exporter.ip();
            let mut rest = flows;
            while !rest.is_empty() {
                let Some(Some(window)) = self.windows.get_mut(consumer) else {
                    return;
                };
                let room = self.max_keys.saturating_sub(window.len()).max(1);
                let (now, later) = rest.split_at(room.min(rest.len()));
                rest = later;
                window.add_all(now, exporter, &self.direction);
                if window.len() >= self.max_keys {
                    metrics::add(&counters.aggregation_early_flushes, 1);
                    tracing::warn!(
                        consumer = %self.owners[consumer].name,
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

    /// Closes a window: it goes to the closer, which hands its batch to the
    /// uploader with the receipts and checkpoint file that wait on it.
    async fn flush(&mut self, consumer: usize, at_shutdown: bool) {
        let now = now_ms();
        let Some(Some(open)) = self.windows.get_mut(consumer) else {
            return;
        };
        // The next window is sized like this one: a busy consumer's map
        // does not grow and rehash its way up again every window.
        let capacity = if at_shutdown { 0 } else { open.v4_len() };
        let next = Window::with_capacity(window_start(now, self.window_len), capacity);
        let window = std::mem::replace(open, next);
        let acks = std::mem::take(&mut self.acks[consumer]);
        if window.is_empty() {
            // Receipts of messages that gave no flows: nothing to keep.
            acks.into_iter().for_each(Ack::done);
            return;
        }
        // A million keys take a fifth of a second to turn into a batch:
        // the closer does it while this goes on with the next window.
        let closed = ClosedWindow {
            window,
            consumer: self.owners[consumer].name.clone(),
            end_ms: now,
            acks,
            at_shutdown,
        };
        self.to_closer(CloserJob::Close(closed)).await;
    }
}

fn window_start(now_ms: u64, len: Duration) -> u64 {
    let len = len.as_millis().max(1) as u64;
    now_ms - now_ms % len
}

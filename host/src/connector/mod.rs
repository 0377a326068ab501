//! Connectors: sockets and other sources that turn bytes into raw messages.
//! They never parse; they hand every message to the shard router.
//!
//! Datagram sources (UDP) drop and count when the parsers fall behind;
//! stream sources (TCP, Kafka, CloudWatch Logs, files) wait instead, and the
//! replayable ones (Kafka, CloudWatch, files) advance their resume point only
//! after the parser workers acknowledged the messages.

mod aws;
mod checkpoint;
mod file;
mod kafka;
mod kafka_positions;
mod kafka_state;
mod tcp;
mod text_framing;
mod udp;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use checkpoint::CheckpointStore;

use crate::config::ConnectorSpec;
use crate::metrics::Metrics;
use crate::parser_state::StateSinks;
use crate::pipeline::ShardRouter;

/// What every connector is started with.
#[derive(Clone)]
pub struct ConnectorContext {
    /// Index into `Config::consumers`.
    pub consumer: usize,
    pub consumer_name: Arc<str>,
    /// Position in the consumer's `connectors` list: names checkpoints.
    pub index: usize,
    pub router: ShardRouter,
    pub metrics: Arc<Metrics>,
    /// `data_directory/checkpoints`.
    pub checkpoint_dir: PathBuf,
    /// Where a Kafka connector with a `state_topic` registers, to be
    /// handed the consumer's parser snapshots.
    pub state_sinks: Arc<StateSinks>,
}

impl ConnectorContext {
    /// `consumer[index]`, for logs and checkpoint file names.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.consumer_name, self.index)
    }
    /// Counts and logs text records a framer discarded for their size.
    fn report_oversized(
        &self,
        framer: &mut text_framing::TextFramer,
        source: &dyn std::fmt::Display,
    ) {
        let count = framer.take_oversized();
        if count > 0 {
            crate::metrics::add(
                &self.metrics.consumer(self.consumer).messages_oversized,
                count,
            );
            tracing::warn!(
                consumer = &*self.consumer_name, %source, count,
                "records over max_message_bytes ({}) discarded", framer.max_message_bytes()
            );
        }
    }
}

/// A running connector.
pub struct ConnectorHandle {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ConnectorHandle {
    fn new(stop: CancellationToken, tasks: Vec<JoinHandle<()>>) -> Self {
        ConnectorHandle { stop, tasks }
    }

    /// Stops intake. Replayable sources keep running until the messages
    /// they sent are acknowledged, to record the final resume point.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until every task of the connector has ended.
    pub async fn finished(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the connector `spec` describes. Fails (naming the consumer) when
/// its socket cannot be bound or its settings are unusable.
pub async fn start(ctx: ConnectorContext, spec: &ConnectorSpec) -> Result<ConnectorHandle> {
    match spec {
        ConnectorSpec::Udp(props) => udp::start(ctx, props),
        ConnectorSpec::Tcp(props) => tcp::start(ctx, props),
        ConnectorSpec::File(props) => file::start(ctx, props),
        ConnectorSpec::Kafka(props) => kafka::start(ctx, props),
        ConnectorSpec::Aws(props) => aws::start(ctx, props).await,
    }
}

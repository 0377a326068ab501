//! Kafka consumer (librdkafka through rdkafka): a consumer group on topics
//! or a topic pattern. At-least-once: a message's offset is stored only
//! once the window holding its records is on disk (its receipt fired), and
//! committed right after each burst of receipts, besides librdkafka's own
//! commits (periodically, on rebalance and at close). Broker outages are
//! librdkafka's to reconnect; we log them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::kafka_positions::PartitionPositions;
use super::kafka_state::{self, StateTopicPublisher};
use super::{ConnectorContext, ConnectorHandle};
use crate::config::{KafkaCommit, KafkaProperties, KafkaStartOffset, librdkafka_value};
use crate::kafka_log::KafkaLog;
use crate::pipeline::{Ack, NO_EXPORTER, RawMessage, ShardKey, WorkerInput, now_ms};
use crate::relay::{HEADER_EXPORTER_PORT, HEADER_RECEIVED_MS};

/// Groups of messages handed to the workers whose offsets are not stored
/// yet. Receipts fire once a group's records are on disk (a window
/// checkpoint, every `checkpoint_seconds`), so this must cover that long:
/// 4096 groups of up to [`GROUP`] messages.
const IN_FLIGHT: usize = 4096;
/// With `commit: upload` receipts fire at window close: room for a window
/// of ten minutes at a busy topic's rate.
const IN_FLIGHT_UNTIL_UPLOAD: usize = 1 << 16;
/// How long reading the state topic may take before decoding goes on
/// without it.
const STATE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka properties (by prefix) about reaching the brokers, which
/// the state topic's producer and reader take from the consumer's.
const CONNECTION_PROPERTIES: &[&str] = &[
    "security.",
    "ssl.",
    "sasl.",
    "socket.",
    "broker.",
    "reconnect.",
    "metadata.",
    "topic.metadata.",
    "api.version",
    "client.dns.lookup",
    "client.rack",
    "connections.max.idle.ms",
    "debug",
];

/// A `state_topic`, and how to reach it.
struct SharedState {
    topic: String,
    client: ClientConfig,
}
/// Messages sharing one receipt, at most; a group also closes when the
/// broker has nothing more for [`GROUP_WAIT`].
const GROUP: usize = 1024;
const GROUP_WAIT: Duration = Duration::from_millis(20);

/// Routes librdkafka's log and rebalance events into ours, and notes each
/// assignment so the consumer restores shared parser state before it
/// routes the first message of the new partitions.
struct KafkaEvents {
    log: KafkaLog,
    label: String,
    assigned: AtomicBool,
    positions: Mutex<PartitionPositions>,
}

impl KafkaEvents {
    fn new(label: String) -> Self {
        KafkaEvents {
            log: KafkaLog::new(label.clone()),
            label,
            assigned: AtomicBool::new(false),
            positions: Mutex::default(),
        }
    }
}

impl ClientContext for KafkaEvents {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl KafkaEvents {
    fn positions(&self) -> std::sync::MutexGuard<'_, PartitionPositions> {
        self.positions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// librdkafka's position in each revoked partition: the offset after
    /// the last message handed to flowlink.
    fn note_revoked_positions(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        let positions = match consumer.position() {
            Ok(positions) => positions,
            Err(e) => {
                tracing::debug!(connector = %self.label, "kafka: positions at revocation unknown: {e}");
                return;
            }
        };
        let elements = positions.elements();
        self.positions().revoke(elements.iter().filter_map(|e| {
            let wanted = revoked.find_partition(e.topic(), e.partition()).is_some();
            match e.offset() {
                Offset::Offset(next) if wanted => Some((e.topic(), e.partition(), next)),
                _ => None,
            }
        }));
    }

    /// Partitions revoked just before and assigned again resume where this
    /// member was, not at the committed offset (see kafka_positions.rs).
    fn resume_where_we_were(&self, assignment: &mut TopicPartitionList) {
        let resume = {
            let elements = assignment.elements();
            self.positions()
                .assign(elements.iter().map(|e| (e.topic(), e.partition())))
        };
        for (topic, partition, next) in resume {
            match assignment.set_partition_offset(&topic, partition, Offset::Offset(next)) {
                Ok(()) => tracing::debug!(
                    connector = %self.label,
                    "kafka: {topic}/{partition} resumes at offset {next}, after what the open window holds"
                ),
                Err(e) => tracing::warn!(
                    connector = %self.label,
                    "kafka: {topic}/{partition} not resumed at {next}: {e}"
                ),
            }
        }
    }
}

/// Gives up `assignment` the way the group's protocol expects: only those
/// partitions when cooperative, the whole assignment when eager.
fn unassign(
    consumer: &BaseConsumer<KafkaEvents>,
    assignment: &TopicPartitionList,
    cooperative: bool,
) -> KafkaResult<()> {
    if cooperative {
        consumer.incremental_unassign(assignment)
    } else {
        consumer.unassign()
    }
}

impl ConsumerContext for KafkaEvents {
    /// rdkafka's own rebalance, with the assignment's start offsets set
    /// first (`resume_where_we_were`) and positions kept at revocation.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        assignment: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.resume_where_we_were(assignment);
                let done = if cooperative {
                    consumer.incremental_assign(assignment)
                } else {
                    consumer.assign(assignment)
                };
                self.post_rebalance(consumer, &Rebalance::Assign(assignment));
                done
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // A lost assignment (session timed out) may have been read
                // by another member already: nothing to resume.
                if consumer.assignment_lost() {
                    self.positions().forget();
                } else {
                    self.note_revoked_positions(consumer, assignment);
                }
                let done = unassign(consumer, assignment, cooperative);
                self.post_rebalance(consumer, &Rebalance::Revoke(assignment));
                done
            }
            other => {
                // As rdkafka's own: unassign (rdkafka only passes assign
                // and revoke events here).
                let error = KafkaError::Rebalance(other.into());
                let done = unassign(consumer, assignment, cooperative);
                self.post_rebalance(consumer, &Rebalance::Error(error));
                done
            }
        };
        if let Err(e) = done {
            tracing::warn!(connector = %self.label, "kafka rebalance not applied: {e}");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Both name the partitions: with the cooperative protocol each event
        // is a change to what the member holds, not all of it.
        let parts = |list: &TopicPartitionList| -> String {
            list.elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(connector = %self.label, "kafka partitions assigned: {}", parts(list));
                self.assigned.store(true, Ordering::SeqCst);
            }
            Rebalance::Revoke(list) => {
                tracing::info!(connector = %self.label, "kafka partitions revoked: {}", parts(list));
            }
            Rebalance::Error(e) => {
                tracing::warn!(connector = %self.label, "kafka rebalance failed: {e}")
            }
        }
    }
}

type GroupConsumer = StreamConsumer<KafkaEvents>;

pub fn start(ctx: ConnectorContext, props: &KafkaProperties) -> Result<ConnectorHandle> {
    let label = ctx.label();
    let properties: Vec<(&String, String)> = props
        .properties
        .iter()
        .flatten()
        .map(|(key, value)| (key, librdkafka_value(value)))
        .collect();
    // What the state topic's clients share with the consumer: brokers and
    // how to reach them (TLS, SASL, sockets), not consumer settings.
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", props.brokers.items().join(","));
    for (key, value) in &properties {
        if CONNECTION_PROPERTIES
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            client.set(*key, value);
        }
    }
    client.set_log_level(RDKafkaLogLevel::Warning);
    let mut config = ClientConfig::new();
    config
        .set("group.id", props.group_id.as_deref().unwrap_or("flowlink"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match props.start_offset.unwrap_or(KafkaStartOffset::Latest) {
                KafkaStartOffset::Earliest => "earliest",
                KafkaStartOffset::Latest => "latest",
            },
        )
        .set("client.id", format!("flowlink-{label}"))
        // librdkafka prefetches up to 64 MiB by default, outside the
        // pipeline's byte bounds; the parsers' queue is the buffer.
        .set("queued.max.messages.kbytes", "16384");
    config.set("bootstrap.servers", props.brokers.items().join(","));
    // The operator's properties win over ours.
    for (key, value) in &properties {
        config.set(*key, value);
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    let consumer: GroupConsumer = config
        .create_with_context(KafkaEvents::new(label.clone()))
        .with_context(|| {
            format!(
                "consumer {:?}: creating the Kafka consumer",
                &*ctx.consumer_name
            )
        })?;
    let subscription: Vec<String> = match (&props.topics, &props.topic_pattern) {
        (Some(topics), _) => topics.items(),
        (None, Some(pattern)) => {
            // librdkafka treats a name starting with ^ as a regex.
            vec![if pattern.starts_with('^') {
                pattern.clone()
            } else {
                format!("^{pattern}")
            }]
        }
        (None, None) => anyhow::bail!("no topics"),
    };
    let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).with_context(|| {
        format!(
            "consumer {:?}: subscribing to {topics:?}",
            &*ctx.consumer_name
        )
    })?;
    tracing::info!(consumer = &*ctx.consumer_name, brokers = %props.brokers.items().join(","), topics = ?topics, "Kafka connector subscribed");

    let shared_state = match &props.state_topic {
        Some(topic) => {
            let data_directory = ctx.checkpoint_dir.parent().unwrap_or(&ctx.checkpoint_dir);
            let member = format!(
                "{}:{}/{}",
                kafka_state::host_name(),
                data_directory.display(),
                ctx.consumer_name
            );
            let publisher =
                StateTopicPublisher::new(&client, topic, member, format!("{label} state topic"))
                    .with_context(|| format!("consumer {:?}", &*ctx.consumer_name))?;
            ctx.state_sinks
                .register(&ctx.consumer_name, Arc::new(publisher));
            Some(SharedState {
                topic: topic.clone(),
                client,
            })
        }
        None => None,
    };

    let consumer = Arc::new(consumer);
    let stop = CancellationToken::new();
    // Receipts that wait for an upload are held a whole window.
    let in_flight = match props.commit.unwrap_or_default() {
        KafkaCommit::Checkpoint => IN_FLIGHT,
        KafkaCommit::Upload => IN_FLIGHT_UNTIL_UPLOAD,
    };
    let (acks_tx, acks_rx) = mpsc::channel(in_flight);
    let tasks = vec![
        tokio::spawn(consume(
            ctx,
            consumer.clone(),
            acks_tx,
            stop.clone(),
            shared_state,
        )),
        tokio::spawn(store_offsets(consumer, acks_rx, label)),
    ];
    Ok(ConnectorHandle::new(stop, tasks))
}

/// The exporter of a message and its worker: the key when that is an
/// address (a relay keyed by exporter, so templates stay with their
/// exporter; its port in a header), else none, and the partition decides
/// the worker.
fn exporter_of(
    key: Option<&[u8]>,
    port: Option<u16>,
    topic: &str,
    partition: i32,
) -> (SocketAddr, ShardKey) {
    let text = key.and_then(|k| std::str::from_utf8(k).ok()).map(str::trim);
    let exporter = text.and_then(|text| {
        text.parse::<SocketAddr>().ok().or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port.unwrap_or(0)))
        })
    });
    match exporter {
        Some(addr) => (addr, ShardKey::exporter(addr.ip())),
        None => (NO_EXPORTER, ShardKey::source((topic, partition))),
    }
}

/// A header's value as text.
fn header<'a>(message: &'a impl Message, name: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)?
        .value
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Reads the state topic and has every worker restore what it holds, in
/// their queues ahead of any message of the partitions just assigned.
async fn restore_shared_state(ctx: &ConnectorContext, shared: &SharedState) {
    let (client, topic) = (shared.client.clone(), shared.topic.clone());
    let started = std::time::Instant::now();
    let read = tokio::task::spawn_blocking(move || {
        kafka_state::read_latest(&client, &topic, STATE_READ_TIMEOUT)
    })
    .await;
    match read {
        Ok(Ok(states)) => {
            tracing::info!(
                consumer = &*ctx.consumer_name,
                topic = %shared.topic,
                snapshots = states.len(),
                ms = started.elapsed().as_millis() as u64,
                "shared parser state read"
            );
            if !states.is_empty() {
                let states = Arc::new(states);
                ctx.router
                    .broadcast(|| WorkerInput::RestoreState {
                        consumer: ctx.consumer,
                        states: states.clone(),
                    })
                    .await;
            }
        }
        Ok(Err(e)) => tracing::warn!(
            consumer = &*ctx.consumer_name,
            "shared parser state not read, decoding goes on without it: {e:#}"
        ),
        Err(e) => tracing::warn!(consumer = &*ctx.consumer_name, "shared parser state: {e}"),
    }
}

/// A group of consecutive messages and the offsets to store once their
/// one receipt fires: the highest of each partition.
struct Pending {
    offsets: Vec<(String, i32, i64)>,
    receipt: oneshot::Receiver<()>,
}

/// The group being filled.
struct Group {
    ack: Ack,
    receipt: oneshot::Receiver<()>,
    offsets: Vec<(String, i32, i64)>,
    messages: usize,
}

impl Group {
    fn new() -> Group {
        let (ack, receipt) = Ack::new();
        Group {
            ack,
            receipt,
            offsets: Vec::new(),
            messages: 0,
        }
    }

    fn note(&mut self, topic: &str, partition: i32, offset: i64) {
        match self
            .offsets
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some(entry) => entry.2 = entry.2.max(offset),
            None => self.offsets.push((topic.to_owned(), partition, offset)),
        }
        self.messages += 1;
    }

    fn close(self) -> Pending {
        self.ack.done();
        Pending {
            offsets: self.offsets,
            receipt: self.receipt,
        }
    }
}

async fn consume(
    ctx: ConnectorContext,
    consumer: Arc<GroupConsumer>,
    acks: mpsc::Sender<Pending>,
    stop: CancellationToken,
    shared_state: Option<SharedState>,
) {
    consume_until_stopped(&ctx, &consumer, &acks, &stop, shared_state.as_ref()).await;
    if shared_state.is_some() {
        ctx.state_sinks.unregister(&ctx.consumer_name);
    }
}

async fn consume_until_stopped(
    ctx: &ConnectorContext,
    consumer: &GroupConsumer,
    acks: &mpsc::Sender<Pending>,
    stop: &CancellationToken,
    shared_state: Option<&SharedState>,
) {
    let mut last_error: Option<String> = None;
    let mut group: Option<Group> = None;
    loop {
        // An open group waits only briefly for more: then it closes, so a
        // quiet topic's offsets still move on.
        let wait = async {
            if group.is_some() {
                tokio::time::timeout(GROUP_WAIT, consumer.recv()).await.ok()
            } else {
                Some(consumer.recv().await)
            }
        };
        let received = tokio::select! {
            _ = stop.cancelled() => None,
            received = wait => Some(received),
        };
        let received = match received {
            None => {
                if let Some(open) = group.take() {
                    let _ = acks.send(open.close()).await;
                }
                return;
            }
            Some(None) => {
                if let Some(open) = group.take()
                    && acks.send(open.close()).await.is_err()
                {
                    return;
                }
                continue;
            }
            Some(Some(received)) => received,
        };
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                // Repeats while a broker is away; say it once per change.
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    tracing::warn!(consumer = &*ctx.consumer_name, "kafka: {text}");
                    last_error = Some(text);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if last_error.take().is_some() {
            tracing::info!(consumer = &*ctx.consumer_name, "kafka: receiving again");
        }
        let open = group.get_or_insert_with(Group::new);
        open.note(message.topic(), message.partition(), message.offset());
        // A tombstone has nothing to parse: only its offset moves on.
        let raw = message.payload().filter(|p| !p.is_empty()).map(|payload| {
            let port = header(&message, HEADER_EXPORTER_PORT).and_then(|p| p.parse().ok());
            let (exporter, shard) =
                exporter_of(message.key(), port, message.topic(), message.partition());
            let received_ms = header(&message, HEADER_RECEIVED_MS).and_then(|t| t.parse().ok());
            RawMessage {
                consumer: ctx.consumer,
                exporter,
                shard,
                received_ms: received_ms.unwrap_or_else(now_ms),
                payload: payload.to_vec().into(),
                stream: None,
                ack: Some(open.ack.share()),
            }
        });
        let full = open.messages >= GROUP;
        drop(message);
        // Partitions were assigned while this message was fetched: their
        // exporters' templates go to the workers before it.
        if let Some(shared) = shared_state
            && consumer.context().assigned.swap(false, Ordering::SeqCst)
        {
            restore_shared_state(ctx, shared).await;
        }
        if let Some(raw) = raw {
            ctx.router.route_waiting(raw).await;
        }
        if full
            && let Some(open) = group.take()
            && acks.send(open.close()).await.is_err()
        {
            return;
        }
    }
}

/// Stores each group's offsets once its receipt fires, in receive order;
/// at the end, commits synchronously so a restart resumes exactly there.
async fn store_offsets(
    consumer: Arc<GroupConsumer>,
    mut acks: mpsc::Receiver<Pending>,
    label: String,
) {
    let mut stored_since_commit = false;
    while let Some(mut pending) = acks.recv().await {
        // The receipts of one window checkpoint fire together; the first
        // one not fired yet ends the burst: commit what it stored now
        // rather than on the auto-commit timer, so a crash right after a
        // checkpoint replays (counts twice) as little as can be.
        // Asynchronous: it only queues the request.
        let fired = match pending.receipt.try_recv() {
            Ok(()) => true,
            Err(oneshot::error::TryRecvError::Closed) => false,
            Err(oneshot::error::TryRecvError::Empty) => {
                if stored_since_commit
                    && let Err(e) = consumer.commit_consumer_state(CommitMode::Async)
                {
                    tracing::debug!(connector = %label, "kafka: commit not queued: {e}");
                }
                (&mut pending.receipt).await.is_ok()
            }
        };
        if !fired {
            // The daemon stopped before this message was handed on: it
            // (and what follows) is read again after a restart.
            acks.close();
            while acks.recv().await.is_some() {}
            break;
        }
        for (topic, partition, offset) in &pending.offsets {
            if let Err(e) = consumer.store_offset(topic, *partition, *offset) {
                // A partition revoked meanwhile: its new owner reads it again.
                tracing::debug!(connector = %label, "kafka: offset not stored: {e}");
            }
        }
        // Nothing more read yet: the burst is over too.
        stored_since_commit = !acks.is_empty();
        if !stored_since_commit && let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(connector = %label, "kafka: commit not queued: {e}");
        }
    }
    let consumer = consumer.clone();
    let committed =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await;
    match committed {
        Ok(Ok(())) => tracing::info!(connector = %label, "kafka offsets committed"),
        Ok(Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset))) => {
            tracing::info!(connector = %label, "kafka offsets committed (nothing new since the last commit)")
        }
        Ok(Err(e)) => tracing::warn!(connector = %label, "kafka: final commit failed: {e}"),
        Err(e) => tracing::warn!(connector = %label, "kafka: final commit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_from_the_key_or_the_partition() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            exporter_of(Some(b"192.0.2.1:2055"), None, "t", 3),
            (
                addr("192.0.2.1:2055"),
                ShardKey::exporter(addr("192.0.2.1:1").ip())
            )
        );
        assert_eq!(
            exporter_of(Some(b"2001:db8::1"), None, "t", 3).0,
            addr("[2001:db8::1]:0")
        );
        // No exporter: plugins see none, and the partition picks the worker.
        assert_eq!(
            exporter_of(Some(b"not-an-ip"), Some(9), "t", 3),
            (NO_EXPORTER, ShardKey::source(("t", 3)))
        );
        assert_eq!(
            exporter_of(None, None, "t", 7).1,
            ShardKey::source(("t", 7))
        );
        // A relay's key and port header.
        assert_eq!(
            exporter_of(Some(b"127.0.0.3"), Some(40000), "t", 1).0,
            addr("127.0.0.3:40000")
        );
        assert_ne!(
            exporter_of(None, None, "t", 7).1,
            exporter_of(None, None, "t", 8).1
        );
    }
}

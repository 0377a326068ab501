//! Parser worker threads. Each owns one plugin session per consumer and
//! calls it synchronously: a thread hop per message would cost more than
//! the parse itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::circuit_breaker::{Admit, CircuitBreaker, Transition};
use super::quarantine::Quarantine;
use super::{Ack, AggregatorInput, ByteBudget, BytePermit, ParsedFlows, RawMessage, WorkerInput};
use crate::config::{BreakerSettings, ConsumerConfig};
use crate::metrics::{self, ConsumerCounters, Metrics};
use crate::parser_state::ParserStateStore;
use crate::plugin::{
    FaultReplay, ParseFailure, ParserInstance, PluginEngine, PluginRegistry, StreamId,
};

/// What every worker needs to start sessions.
pub struct WorkerSetup {
    pub engine: Arc<PluginEngine>,
    pub registry: Arc<PluginRegistry>,
    pub consumers: Vec<ConsumerConfig>,
    pub metrics: Arc<Metrics>,
    /// Where sessions' state (templates) is snapshotted and restored from.
    pub state_store: ParserStateStore,
    /// How often a worker snapshots sessions whose state changed.
    pub snapshot_every: Duration,
    /// The number of workers: snapshots of another count are all merged.
    pub workers: usize,
    /// Bytes of parsed flows on their way to the aggregator.
    pub aggregator_budget: ByteBudget,
    /// Where a worker waits for room in `aggregator_budget`.
    pub runtime: tokio::runtime::Handle,
    /// Where quarantined messages go (`data_directory/quarantine/`).
    pub data_directory: std::path::PathBuf,
    /// `quarantine_mb` in bytes, shared by the workers; 0: off.
    pub quarantine_max_bytes: u64,
}

pub struct ParserWorkerPool {
    threads: Vec<JoinHandle<()>>,
}

impl ParserWorkerPool {
    /// Starts `count` workers; returns the pool and one input queue per worker.
    /// Sessions are opened up front, so a plugin that refuses its properties
    /// stops the start with the consumer's name.
    pub fn start(
        setup: Arc<WorkerSetup>,
        count: usize,
        queue_capacity: usize,
        output: mpsc::Sender<AggregatorInput>,
    ) -> Result<(Self, Vec<mpsc::Sender<WorkerInput>>)> {
        let mut threads = Vec::new();
        let mut inputs = Vec::new();
        for index in 0..count {
            let sessions = open_sessions(&setup, index)?;
            let (tx, rx) = mpsc::channel(queue_capacity);
            let setup = setup.clone();
            let output = output.clone();
            let thread = std::thread::Builder::new()
                .name(format!("parser-{index}"))
                .spawn(move || run_worker(setup, index, sessions, rx, output))
                .context("starting a parser worker thread")?;
            threads.push(thread);
            inputs.push(tx);
        }
        Ok((ParserWorkerPool { threads }, inputs))
    }

    /// Waits for every worker to drain its queue (after all senders are gone).
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn open_sessions(setup: &WorkerSetup, worker: usize) -> Result<Vec<ParserInstance>> {
    setup
        .consumers
        .iter()
        .map(|consumer| open_session(setup, consumer, worker))
        .collect()
}

/// A parser session for `consumer` on worker `worker`; the error names the
/// consumer and carries the plugin's own word on its properties.
pub fn open_session(
    setup: &WorkerSetup,
    consumer: &ConsumerConfig,
    worker: usize,
) -> Result<ParserInstance> {
    let plugin = setup
        .registry
        .get(&consumer.parser.plugin)
        .with_context(|| {
            format!(
                "consumer {:?}: no parser plugin named {:?}",
                consumer.name, consumer.parser.plugin
            )
        })?;
    plugin
        .check_pin(consumer.parser.sha256.as_deref())
        .map_err(|why| anyhow::anyhow!("consumer {:?}: {why}", consumer.name))?;
    let tag: Arc<str> = format!(
        "plugin={} consumer={} worker={worker}",
        plugin.name, consumer.name
    )
    .into();
    let mut session = ParserInstance::new(
        setup.engine.clone(),
        plugin.clone(),
        consumer.parser.properties_json.clone(),
        consumer.parser.limits,
        tag,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "consumer {:?}: parser {:?} refused to start: {e}",
            consumer.name,
            plugin.name
        )
    })?;
    restore_snapshots(setup, consumer, worker, &mut session);
    Ok(session)
}

/// Restores what an earlier run saved: this worker's own snapshot when the
/// number of workers is the same, else every worker's (the exporters were
/// spread differently; the parser merges them).
fn restore_snapshots(
    setup: &WorkerSetup,
    consumer: &ConsumerConfig,
    worker: usize,
    session: &mut ParserInstance,
) {
    let snapshots = setup
        .state_store
        .load(&consumer.name, &consumer.parser.plugin);
    if snapshots.is_empty() {
        return;
    }
    let same_layout = snapshots.len() == setup.workers
        && snapshots.iter().enumerate().all(|(i, s)| s.worker == i);
    let mut restored = 0;
    for snapshot in &snapshots {
        if same_layout && snapshot.worker != worker {
            continue;
        }
        match session.restore(&snapshot.state) {
            Ok(()) => restored += 1,
            Err(why) => setup.state_store.set_aside(snapshot, &why),
        }
    }
    tracing::info!(
        consumer = %consumer.name,
        worker,
        snapshots = restored,
        "parser state restored"
    );
}

/// Messages handed to a plugin in one call, at most: enough to amortise
/// the call, small enough that a queue never waits long for a batch.
const MAX_BATCH_MESSAGES: usize = 64;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// A consumer's session on this worker, by slot.
struct Slot {
    name: Arc<str>,
    session: ParserInstance,
    breaker: CircuitBreaker,
    quarantine: Option<Quarantine>,
}

impl Slot {
    fn new(
        setup: &WorkerSetup,
        worker: usize,
        name: Arc<str>,
        session: ParserInstance,
        breaker: BreakerSettings,
    ) -> Slot {
        let share = setup.quarantine_max_bytes / setup.workers.max(1) as u64;
        Slot {
            quarantine: Quarantine::open(&setup.data_directory, &name, worker, share),
            name,
            session,
            breaker: CircuitBreaker::new(breaker),
        }
    }
}

fn run_worker(
    setup: Arc<WorkerSetup>,
    worker: usize,
    sessions: Vec<ParserInstance>,
    mut input: mpsc::Receiver<WorkerInput>,
    output: mpsc::Sender<AggregatorInput>,
) {
    let mut slots: Vec<Option<Slot>> = setup
        .consumers
        .iter()
        .zip(sessions)
        .map(|(consumer, session)| {
            Some(Slot::new(
                &setup,
                worker,
                consumer.name.as_str().into(),
                session,
                consumer.parser.breaker,
            ))
        })
        .collect();
    let mut batch: Vec<RawMessage> = Vec::with_capacity(MAX_BATCH_MESSAGES);
    // The batch's room in the byte budget, given back once it is parsed.
    let mut permits: Vec<BytePermit> = Vec::with_capacity(MAX_BATCH_MESSAGES);
    let mut reject_log = RejectLog::default();
    let mut generation = setup.registry.generation();
    let mut snapshots = Snapshots::new(worker, setup.snapshot_every);
    loop {
        // Idle with state learned since the last snapshot: wait only until
        // it is due, so the last templates of a burst reach the disk (and
        // a group's state topic) without waiting for the next message.
        let first = if snapshots.dirty {
            let wait = snapshots.until_due();
            match setup
                .runtime
                .block_on(async { tokio::time::timeout(wait, input.recv()).await })
            {
                Ok(Some(first)) => first,
                Ok(None) => break,
                Err(_) => {
                    snapshots.write_all(&setup.state_store, &mut slots);
                    continue;
                }
            }
        } else {
            match input.blocking_recv() {
                Some(first) => first,
                None => break,
            }
        };
        // A new plugin build was published: move to it between batches.
        if setup.registry.generation() != generation {
            generation = setup.registry.generation();
            adopt_new_builds(&setup, &mut slots);
        }
        // Take what is already queued; never wait for more. A closed stream
        // or a control item ends the batch, so the messages before it are
        // parsed first.
        let mut control = None;
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                WorkerInput::Message(message, permit) => {
                    bytes += message.payload.len();
                    batch.push(message);
                    permits.push(permit);
                }
                WorkerInput::Datagrams(messages, permit) => {
                    bytes += messages.iter().map(|m| m.payload.len()).sum::<usize>();
                    batch.extend(messages);
                    permits.push(permit);
                }
                other => {
                    control = Some(other);
                    break;
                }
            }
            if batch.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                next = input.try_recv().ok();
            }
        }
        for (key, group) in split_groups(&mut batch) {
            // A consumer closed by a reload stops its connectors first, so
            // no message of it can follow; dropping is a safe fallback.
            let Some(slot) = slots.get_mut(key.0).and_then(Option::as_mut) else {
                continue;
            };
            if !parse_group(&setup, slot, key, group, &output, &mut reject_log) {
                return;
            }
        }
        permits.clear();
        if let Some(control) = control {
            if let WorkerInput::CloseConsumer { consumer, .. } = &control
                && let Some(Some(slot)) = slots.get_mut(*consumer)
            {
                snapshots.write(&setup.state_store, *consumer, slot);
            }
            apply_control(&setup, worker, &mut slots, control);
        }
        snapshots.dirty = true;
        if snapshots.due() {
            snapshots.write_all(&setup.state_store, &mut slots);
        }
    }
    // Input closed: the daemon is stopping. What the sessions know now is
    // what the next start begins with.
    snapshots.write_all(&setup.state_store, &mut slots);
}

/// A consumer and, for TCP, the connection: one parser session.
type GroupKey = (usize, Option<StreamId>);

/// The batch as one group per consumer and TCP connection (one plugin
/// call each), in key order; a sort that is stable, so each group's
/// messages keep their arrival order (templates before their data).
fn split_groups(batch: &mut Vec<RawMessage>) -> Vec<(GroupKey, Vec<RawMessage>)> {
    batch.sort_by_key(|m| (m.consumer, m.stream));
    let mut groups = Vec::new();
    while !batch.is_empty() {
        let key = (batch[0].consumer, batch[0].stream);
        let same = batch
            .iter()
            .take_while(|m| (m.consumer, m.stream) == key)
            .count();
        groups.push((key, batch.drain(..same).collect()));
    }
    groups
}

/// A worker's periodic snapshots: every `every`, of the sessions whose
/// state changed since their last snapshot; the first due at once, so the
/// first templates after a start are on disk within a batch.
struct Snapshots {
    worker: usize,
    every: Duration,
    last: Option<Instant>,
    /// Messages were parsed since the last round: state may have changed.
    dirty: bool,
    written: Vec<Option<Vec<u8>>>,
}

impl Snapshots {
    fn new(worker: usize, every: Duration) -> Self {
        Snapshots {
            worker,
            every,
            last: None,
            dirty: false,
            written: Vec::new(),
        }
    }

    fn due(&self) -> bool {
        self.last.is_none_or(|last| last.elapsed() >= self.every)
    }

    /// How long until the next round is due.
    fn until_due(&self) -> Duration {
        self.last.map_or(Duration::ZERO, |last| {
            self.every.saturating_sub(last.elapsed())
        })
    }

    fn write_all(&mut self, store: &ParserStateStore, slots: &mut [Option<Slot>]) {
        self.last = Some(Instant::now());
        self.dirty = false;
        for (consumer, slot) in slots.iter_mut().enumerate() {
            if let Some(slot) = slot {
                self.write(store, consumer, slot);
            }
        }
    }

    fn write(&mut self, store: &ParserStateStore, consumer: usize, slot: &mut Slot) {
        let Some(state) = slot.session.snapshot() else {
            return;
        };
        if self.written.len() <= consumer {
            self.written.resize(consumer + 1, None);
        }
        if self.written[consumer].as_ref() == Some(&state) {
            return;
        }
        let plugin = slot.session.plugin().name.clone();
        match store.write(&slot.name, self.worker, &plugin, &state) {
            Ok(()) => self.written[consumer] = Some(state),
            Err(e) => tracing::error!(
                consumer = %slot.name,
                worker = self.worker,
                "cannot write the parser state snapshot: {e}"
            ),
        }
    }
}

fn apply_control(
    setup: &WorkerSetup,
    worker: usize,
    slots: &mut Vec<Option<Slot>>,
    control: WorkerInput,
) {
    match control {
        WorkerInput::Message(..) | WorkerInput::Datagrams(..) => {
            unreachable!("messages are batched")
        }
        WorkerInput::StreamClosed { consumer, stream } => {
            if let Some(Some(slot)) = slots.get_mut(consumer) {
                slot.session.close_stream(stream);
            }
        }
        WorkerInput::OpenConsumer {
            consumer,
            name,
            session,
            breaker,
        } => {
            if slots.len() <= consumer {
                slots.resize_with(consumer + 1, || None);
            }
            slots[consumer] = Some(Slot::new(setup, worker, name, *session, breaker));
        }
        WorkerInput::ReplaceSession {
            consumer,
            session,
            carry_state,
            breaker,
        } => {
            if let Some(Some(slot)) = slots.get_mut(consumer) {
                let mut session = *session;
                if carry_state {
                    session.adopt_state(&mut slot.session);
                }
                slot.session = session;
                slot.breaker = CircuitBreaker::new(breaker);
            }
        }
        WorkerInput::CloseConsumer { consumer, done } => {
            if let Some(slot) = slots.get_mut(consumer) {
                *slot = None;
            }
            let _ = done.send(());
        }
        WorkerInput::RestoreState { consumer, states } => {
            if let Some(Some(slot)) = slots.get_mut(consumer) {
                restore_shared(slot, worker, &states);
            }
        }
    }
}

/// Merges the group's published snapshots into the session: where two
/// know a template, the plugin keeps the one learned later.
fn restore_shared(slot: &mut Slot, worker: usize, states: &[Vec<u8>]) {
    let plugin = slot.session.plugin().name.clone();
    let mut restored = 0;
    for bytes in states {
        let outcome = ParserStateStore::decode_shared(bytes, &plugin)
            .and_then(|state| slot.session.restore(state));
        match outcome {
            Ok(()) => restored += 1,
            Err(why) => tracing::warn!(
                consumer = %slot.name,
                worker,
                "a published parser state not restored: {why}"
            ),
        }
    }
    tracing::info!(
        consumer = %slot.name,
        worker,
        restored,
        published = states.len(),
        "parser state restored from the group's state topic"
    );
}

fn adopt_new_builds(setup: &WorkerSetup, slots: &mut [Option<Slot>]) {
    for slot in slots.iter_mut().flatten() {
        let session = &mut slot.session;
        if let Some(current) = setup.registry.get(&session.plugin().name)
            && !Arc::ptr_eq(&current, session.plugin())
        {
            session.swap_plugin(current);
            if slot.breaker.reset() == Some(Transition::Closed) {
                tracing::info!(
                    consumer = %slot.name,
                    plugin = %session.plugin().name,
                    version = %session.plugin().version,
                    "plugin circuit closed: a new build was swapped in"
                );
            }
        }
    }
}

/// Parses one consumer's messages in one plugin call and forwards the
/// flows. Returns false once the aggregator is gone.
fn parse_group(
    setup: &WorkerSetup,
    slot: &mut Slot,
    (consumer, stream): GroupKey,
    mut group: Vec<RawMessage>,
    output: &mpsc::Sender<AggregatorInput>,
    reject_log: &mut RejectLog,
) -> bool {
    let counters = setup.metrics.consumer(consumer);
    let counters = &*counters;
    // Sources that replay (receipts) are always parsed: a message refused
    // unparsed would be acknowledged, and they are slowed by backpressure,
    // not by loss. Datagrams meet the breaker.
    if slot.breaker.admit(Instant::now()) == Admit::Refuse && group.iter().all(|m| m.ack.is_none())
    {
        refuse_group(slot, group, counters);
        return true;
    }
    let name = &*slot.name;
    let session = &mut slot.session;
    let acks: Vec<Ack> = group.iter_mut().filter_map(|m| m.ack.take()).collect();
    // A message with a receipt comes from a source that replays: a message
    // not tried would be acknowledged unparsed.
    let replay = if !acks.is_empty() {
        FaultReplay::Every
    } else {
        FaultReplay::Capped
    };
    let restarts_before = session.restarts;
    let parsed = session.parse_batch(stream, &group, replay);
    let faults: Vec<bool> = parsed
        .outcomes
        .iter()
        .map(|r| r.as_ref().is_err_and(ParseFailure::is_plugin_fault))
        .collect();
    // The backoff counts from the end of the call: a batch of timeouts
    // may take longer than the backoff itself.
    if let Some(transition) = slot.breaker.record(Instant::now(), faults) {
        log_breaker(name, session.plugin().name.as_str(), transition);
    }
    metrics::add(
        &counters.plugin_restarts,
        session.restarts - restarts_before,
    );
    // Which exporter sent how many of the call's flows, in order.
    let mut runs: Vec<(SocketAddr, usize)> = Vec::with_capacity(group.len());
    for (result, message) in parsed.outcomes.into_iter().zip(&group) {
        let exporter = message.exporter;
        match result {
            Ok(outcome) => {
                metrics::add(&counters.flows_parsed, outcome.flows as u64);
                metrics::add(&counters.records_rejected, outcome.rejected.len() as u64);
                metrics::add(&counters.records_skipped, u64::from(outcome.skipped));
                for rejected in &outcome.rejected {
                    reject_log.log(name, exporter, rejected.index, &rejected.reason);
                }
                if outcome.flows > 0 {
                    runs.push((exporter, outcome.flows));
                }
            }
            Err(failure) => {
                count_failure(counters, &failure);
                if failure.is_lost_to_the_plugin() {
                    quarantine(
                        &mut slot.quarantine,
                        counters,
                        message.received_ms,
                        exporter,
                        &message.payload,
                    );
                    tracing::warn!(
                        consumer = %name,
                        exporter = %exporter,
                        bytes = message.payload.len(),
                        "message lost to a plugin fault: {failure}"
                    );
                } else {
                    tracing::debug!(consumer = %name, exporter = %exporter, "{failure}");
                }
            }
        }
    }
    // The flows of these messages, as few queue items as the bound allows.
    // The receipts go with the last of them, so they join the window that
    // holds them and fire once it is durable. A message that failed is
    // acknowledged too: replaying a poison message forever would stop its
    // source (it is counted as failed).
    let mut items = ParsedFlows::items(consumer, parsed.flows, &runs);
    if let Some(last) = items.last_mut() {
        last.acks = acks;
    } else if !acks.is_empty() {
        return output
            .blocking_send(AggregatorInput::Acks { consumer, acks })
            .is_ok();
    }
    items
        .into_iter()
        .all(|item| send_flows(setup, output, item))
}

/// Keeps a message the plugin did not parse, when quarantine is on.
fn quarantine(
    quarantine: &mut Option<Quarantine>,
    counters: &ConsumerCounters,
    received_ms: u64,
    exporter: SocketAddr,
    payload: &[u8],
) {
    if let Some(quarantine) = quarantine
        && quarantine.keep(received_ms, exporter, payload)
    {
        metrics::add(&counters.messages_quarantined, 1);
    }
}

/// Datagrams that meet an open circuit breaker: not parsed, counted, kept
/// in quarantine when it is on.
fn refuse_group(slot: &mut Slot, group: Vec<RawMessage>, counters: &ConsumerCounters) {
    metrics::add(&counters.plugin_circuit_open, group.len() as u64);
    for message in group {
        quarantine(
            &mut slot.quarantine,
            counters,
            message.received_ms,
            message.exporter,
            &message.payload,
        );
    }
}

fn log_breaker(consumer: &str, plugin: &str, transition: Transition) {
    match transition {
        Transition::Opened {
            faults,
            of,
            backoff,
        } => tracing::error!(
            consumer,
            plugin,
            faults,
            of_messages = of,
            backoff_seconds = backoff.as_secs(),
            "plugin circuit-broken: it faulted on {faults} of its last {of} messages; its messages \
             are not parsed for {} s, then one batch is tried (a new build closes it at once)",
            backoff.as_secs()
        ),
        Transition::Closed => {
            tracing::info!(
                consumer,
                plugin,
                "plugin circuit closed: a trial batch parsed"
            )
        }
    }
}

/// Waits for room in the aggregator's byte budget, then for room in its
/// queue: the aggregator's pace reaches the worker, and from there the
/// connectors (which count drops or pause). The permit is taken only here,
/// right before the send, so a worker never waits while holding one that
/// the aggregator cannot give back. False once the aggregator is gone.
fn send_flows(
    setup: &WorkerSetup,
    output: &mpsc::Sender<AggregatorInput>,
    mut flows: ParsedFlows,
) -> bool {
    flows.bytes = Some(
        setup
            .aggregator_budget
            .take_blocking(&setup.runtime, flows.size()),
    );
    output.blocking_send(AggregatorInput::Flows(flows)).is_ok()
}

/// Rejected records are logged with their reason, but at most
/// `PER_WINDOW` lines per worker every ten seconds: a source gone bad must
/// not drown the log. The counter has the full count.
#[derive(Default)]
struct RejectLog {
    window: Option<std::time::Instant>,
    logged: u32,
    suppressed: u64,
}

impl RejectLog {
    const PER_WINDOW: u32 = 10;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

    fn log(&mut self, consumer: &str, exporter: SocketAddr, index: u32, reason: &str) {
        let now = std::time::Instant::now();
        if self.window.is_none_or(|start| now - start >= Self::WINDOW) {
            if self.suppressed > 0 {
                tracing::warn!(
                    "{} more records rejected by this worker's parsers in the last {} s (counted, not logged)",
                    self.suppressed,
                    Self::WINDOW.as_secs()
                );
            }
            *self = RejectLog {
                window: Some(now),
                logged: 0,
                suppressed: 0,
            };
        }
        if self.logged < Self::PER_WINDOW {
            self.logged += 1;
            tracing::warn!(consumer, exporter = %exporter, record = index, "record rejected: {reason}");
        } else {
            self.suppressed += 1;
        }
    }
}

fn count_failure(counters: &ConsumerCounters, failure: &ParseFailure) {
    let counter = match failure {
        ParseFailure::Rejected(_) => &counters.messages_failed,
        ParseFailure::Timeout { .. } => &counters.plugin_timeouts,
        ParseFailure::OutOfMemory { .. } => &counters.plugin_out_of_memory,
        ParseFailure::Trap(_) | ParseFailure::Unavailable(_) | ParseFailure::InvalidOutput(_) => {
            &counters.plugin_traps
        }
        ParseFailure::TooManyRecords { .. } => &counters.plugin_over_cap,
        ParseFailure::NotTried(_) => &counters.messages_not_tried,
    };
    metrics::add(counter, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{NO_EXPORTER, ShardKey};

    fn message(consumer: usize, stream: Option<StreamId>, n: u8) -> RawMessage {
        RawMessage {
            consumer,
            exporter: NO_EXPORTER,
            shard: ShardKey::source("test"),
            received_ms: 0,
            payload: vec![n].into(),
            stream,
            ack: None,
        }
    }

    #[test]
    fn a_batch_splits_by_consumer_and_connection_keeping_arrival_order() {
        let mut batch = vec![
            message(1, None, 1),
            message(0, Some(7), 2),
            message(1, None, 3),
            message(0, None, 4),
            message(0, Some(7), 5),
        ];
        let groups: Vec<(GroupKey, Vec<u8>)> = split_groups(&mut batch)
            .into_iter()
            .map(|(key, group)| (key, group.iter().map(|m| m.payload[0]).collect()))
            .collect();
        assert_eq!(
            groups,
            [
                ((0, None), vec![4]),
                ((0, Some(7)), vec![2, 5]),
                ((1, None), vec![1, 3]),
            ]
        );
        assert!(batch.is_empty());
    }
}

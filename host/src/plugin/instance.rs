//! One live parser session inside its own store: the unit that a trap,
//! a timeout or an out-of-memory throws away and rebuilds.

use std::collections::HashMap;
use std::sync::Arc;

use flowlink_flow::packed::PACKED_FLOW_LEN;
use flowlink_flow::{Flow, PackedFlows, Rejected};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use super::bindings::{FlowParser, Message, Origin, Parsed};
use super::engine::{PluginEngine, deadline_ticks};
use super::loader::{LoadedPlugin, ParsePacked};
use super::sandbox::{SandboxLimits, SandboxState, arm_deadline};

/// A message as a parse call reads it: where it came from and its bytes.
/// The pipeline's own messages implement it, so a worker builds no list of
/// its own per call: contract 1.1 copies the payloads once, into the call's
/// one buffer; contract 1.0 gets a list made for it.
pub trait InputMessage {
    fn origin(&self) -> Origin;
    fn payload(&self) -> &[u8];
}

impl InputMessage for Message {
    fn origin(&self) -> Origin {
        self.origin
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// What one message produced (the one-message call, [`ParserInstance::parse`]).
#[derive(Debug, Default)]
pub struct ParsedMessage {
    pub flows: Vec<Flow>,
    pub rejected: Vec<Rejected>,
    /// Records the parser left out on purpose (VPC NODATA, keep-alives).
    pub skipped: u32,
}

/// What one message of a batch produced; its flows are the next
/// `flows` of the batch's list.
#[derive(Debug, Default)]
pub struct MessageOutcome {
    pub flows: usize,
    pub rejected: Vec<Rejected>,
    /// Records the parser left out on purpose (VPC NODATA, keep-alives).
    pub skipped: u32,
}

/// What a batch of messages produced: the flows of all of them in one
/// list, in message order (no allocation per message), and one outcome
/// per message.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Checked, still packed: the aggregator reads them in place.
    pub flows: PackedFlows,
    pub outcomes: Vec<Result<MessageOutcome, ParseFailure>>,
}

/// Why one message produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFailure {
    /// The plugin looked at the message and refused it (bad version, garbage).
    #[error("rejected by the parser: {0}")]
    Rejected(String),
    #[error("plugin exceeded its {limit_ms} ms deadline")]
    Timeout { limit_ms: u128 },
    #[error("plugin exceeded its memory cap of {cap} bytes (asked for {wanted})")]
    OutOfMemory { cap: usize, wanted: usize },
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin returned {count} records for one message, over the cap of {cap}")]
    TooManyRecords { count: usize, cap: usize },
    #[error("plugin returned malformed output: {0}")]
    InvalidOutput(String),
    #[error("plugin could not be started: {0}")]
    Unavailable(String),
    /// Left untried: the plugin faulted [`MAX_FAULTS_PER_BATCH`] times on
    /// the batch before it (lost, but not a fault of its own).
    #[error("not tried: the plugin faulted {0} times on this batch")]
    NotTried(usize),
}

impl ParseFailure {
    /// True when the plugin misbehaved (as opposed to refusing bad input).
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(self, ParseFailure::Rejected(_) | ParseFailure::NotTried(_))
    }

    /// The message never reached a working parser: kept in quarantine.
    pub fn is_lost_to_the_plugin(&self) -> bool {
        !matches!(self, ParseFailure::Rejected(_))
    }
}

/// How far a faulted batch is replayed message by message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultReplay {
    /// Datagrams: a burst of bad input must not stall the worker (each
    /// fault may cost a whole call timeout), so after a few faults the rest
    /// of the batch is lost, counted.
    Capped,
    /// A source that can be paused and replays (Kafka, files, CloudWatch):
    /// every message is tried, as one not tried would be acknowledged
    /// unparsed. Slow input is backpressure there, not loss.
    Every,
}

/// A transport session (a TCP connection) whose messages get a parser
/// session of their own: IPFIX templates over TCP are scoped to it.
pub type StreamId = u64;

struct Live {
    store: Store<SandboxState>,
    bindings: FlowParser,
    /// `packed-input.parse-packed`, when the component has it.
    parse_packed: Option<ParsePacked>,
    /// The session of datagram sources (UDP), templates scoped by exporter.
    datagrams: ResourceAny,
    streams: HashMap<StreamId, ResourceAny>,
}

fn open_session(
    bindings: &FlowParser,
    store: &mut Store<SandboxState>,
    config_json: &str,
) -> Result<ResourceAny, ParseFailure> {
    let opened = bindings
        .flowlink_parser_parser()
        .session()
        .call_open(store, config_json)
        .map_err(|e| ParseFailure::Unavailable(format!("open() trapped: {e:#}")))?;
    opened.map_err(ParseFailure::Unavailable)
}

/// Every session's saved state: the datagram session and each stream's.
struct SavedSessions {
    datagrams: Option<Vec<u8>>,
    streams: Vec<(StreamId, Option<Vec<u8>>)>,
}

/// A parser session of one consumer on one worker thread.
pub struct ParserInstance {
    engine: Arc<PluginEngine>,
    plugin: Arc<LoadedPlugin>,
    config_json: String,
    limits: SandboxLimits,
    tag: Arc<str>,
    /// `None` after a fault: rebuilt on the next message.
    live: Option<Live>,
    /// Instances thrown away after a fault.
    pub restarts: u64,
    /// The datagram session's state at the last snapshot: a faulted
    /// instance is rebuilt from it, so one bad message costs no templates.
    last_good: Option<Vec<u8>>,
    /// Faults in a row without a good call: when instances rebuilt from
    /// `last_good` keep faulting, the state itself is suspect and goes.
    faults_in_a_row: u32,
    /// Hand calls to `packed-input` when the component has it.
    packed_input: bool,
    packed: PackedScratch,
}

/// Faults in a row after which the remembered state is dropped.
const POISONED_STATE_FAULTS: u32 = 3;

/// Faults a batch may cost before its remaining messages are refused
/// without a try: each fault may take a whole call timeout, and a burst of
/// bad input must not stall the worker for seconds.
const MAX_FAULTS_PER_BATCH: usize = 4;

impl ParserInstance {
    /// Starts a session. The error is the plugin's own word on the
    /// configuration (or why it could not start), for the operator.
    pub fn new(
        engine: Arc<PluginEngine>,
        plugin: Arc<LoadedPlugin>,
        config_json: String,
        limits: SandboxLimits,
        tag: Arc<str>,
    ) -> Result<Self, ParseFailure> {
        let mut instance = ParserInstance {
            engine,
            plugin,
            config_json,
            limits,
            tag,
            live: None,
            restarts: 0,
            last_good: None,
            faults_in_a_row: 0,
            packed_input: true,
            packed: PackedScratch::default(),
        };
        instance.live = Some(instance.start()?);
        Ok(instance)
    }

    fn start(&self) -> Result<Live, ParseFailure> {
        let mut store = self.engine.new_store(&self.limits, self.tag.clone());
        let instance = self
            .plugin
            .instantiate(&mut store)
            .map_err(|e| ParseFailure::Unavailable(format!("instantiating: {e:#}")))?;
        arm_deadline(&mut store, deadline_ticks(&self.limits));
        let bindings = instance.bindings;
        let datagrams = open_session(&bindings, &mut store, &self.config_json)?;
        Ok(Live {
            store,
            bindings,
            parse_packed: instance.parse_packed,
            datagrams,
            streams: HashMap::new(),
        })
    }

    /// Parses one message.
    pub fn parse(
        &mut self,
        origin: &Origin,
        payload: &[u8],
    ) -> Result<ParsedMessage, ParseFailure> {
        let message = Message {
            origin: *origin,
            payload: payload.to_vec(),
        };
        let batch = self.parse_batch(None, std::slice::from_ref(&message), FaultReplay::Capped);
        let outcome = batch
            .outcomes
            .into_iter()
            .next()
            .expect("one result per message")?;
        Ok(ParsedMessage {
            flows: batch.flows.to_flows(),
            rejected: outcome.rejected,
            skipped: outcome.skipped,
        })
    }

    /// Parses a batch of messages in one call: one outcome per message, in
    /// order. A fault costs only the message that caused it: the batch is
    /// replayed message by message on a fresh instance (restored from the
    /// last good state) to find it. With [`FaultReplay::Capped`] the replay
    /// stops after [`MAX_FAULTS_PER_BATCH`] faults and the rest is lost.
    pub fn parse_batch<M: InputMessage>(
        &mut self,
        stream: Option<StreamId>,
        messages: &[M],
        replay: FaultReplay,
    ) -> ParsedBatch {
        let mut out = ParsedBatch {
            flows: PackedFlows::new(),
            outcomes: Vec::with_capacity(messages.len()),
        };
        self.parse_into(stream, messages, replay, &mut out);
        out
    }

    fn parse_into<M: InputMessage>(
        &mut self,
        stream: Option<StreamId>,
        messages: &[M],
        replay: FaultReplay,
        out: &mut ParsedBatch,
    ) {
        match self.call(stream, messages) {
            Ok(parsed) => split(
                parsed,
                messages.len(),
                self.limits.max_flows_per_message,
                out,
            ),
            Err(fault) if messages.len() == 1 => out.outcomes.push(Err(fault)),
            Err(_) => {
                let mut faults = 1;
                for message in messages {
                    if replay == FaultReplay::Capped && faults > MAX_FAULTS_PER_BATCH {
                        out.outcomes
                            .push(Err(ParseFailure::NotTried(MAX_FAULTS_PER_BATCH)));
                        continue;
                    }
                    self.parse_into(stream, std::slice::from_ref(message), replay, out);
                    let last = out.outcomes.last().expect("one outcome per message");
                    if last.as_ref().is_err_and(ParseFailure::is_plugin_fault) {
                        faults += 1;
                    }
                }
            }
        }
    }

    /// The datagram session's state (templates) for a snapshot, remembered
    /// as the state a faulted instance is rebuilt from. `None` when the
    /// instance is faulted or the plugin cannot save.
    pub fn snapshot(&mut self) -> Option<Vec<u8>> {
        let live = self.live.as_mut()?;
        let session = live.datagrams;
        let state = save_session(live, session)?;
        self.last_good = Some(state.clone());
        Some(state)
    }

    /// Restores a snapshot into the datagram session, adding to what it
    /// knows; the plugin's refusal is returned for the caller to set the
    /// snapshot aside.
    pub fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let live = self.live.as_mut().ok_or("the session is not running")?;
        arm_deadline(&mut live.store, 1_000);
        let session = live.datagrams;
        match live
            .bindings
            .flowlink_parser_parser()
            .session()
            .call_restore_state(&mut live.store, session, state)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(why),
            Err(e) => {
                self.live = None;
                Err(format!("restore-state trapped: {e:#}"))
            }
        }
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Whether calls go through `packed-input` when the component has it
    /// (the default); off, every call is `session.parse`, as for a
    /// component of contract 1.0.0. For `flowlink-bench parser`, which
    /// measures the two calls side by side.
    pub fn set_packed_input(&mut self, on: bool) {
        self.packed_input = on;
    }

    /// The largest linear memory this instance has been granted, bytes
    /// (`None` while it is faulted).
    pub fn memory_bytes(&self) -> Option<usize> {
        self.live.as_ref().map(|live| live.store.data().memory.peak)
    }

    /// Moves this session to another build of its plugin between two
    /// messages: the old sessions' state (templates) is saved and restored
    /// into new ones. If the old instance is faulted its state is gone; if
    /// the new one refuses the state it starts empty (logged).
    pub fn swap_plugin(&mut self, plugin: Arc<LoadedPlugin>) {
        let started = std::time::Instant::now();
        self.swap_plugin_timed(plugin);
        tracing::debug!(
            tag = %self.tag,
            version = %self.plugin.version,
            pause_us = started.elapsed().as_micros() as u64,
            "worker moved to the new plugin build"
        );
    }

    fn swap_plugin_timed(&mut self, plugin: Arc<LoadedPlugin>) {
        let saved = self.save_all();
        let old = std::mem::replace(&mut self.plugin, plugin);
        let mut live = match self.start() {
            Ok(live) => live,
            Err(e) => {
                // The old build keeps serving, with its state.
                tracing::error!(
                    "{}: the new plugin build does not start, keeping the old one: {e}",
                    self.tag
                );
                self.plugin = old;
                match self.start() {
                    Ok(live) => live,
                    Err(e) => {
                        tracing::error!("{}: the old build does not restart: {e}", self.tag);
                        return;
                    }
                }
            }
        };
        if let Some(saved) = saved {
            self.restore_into(&mut live, saved);
        }
        self.live = Some(live);
    }

    /// Takes over `old`'s session state (templates) on a reload that
    /// changed the consumer's parser properties; `self` is the new session.
    /// State the new session refuses is dropped (logged), as on hot swap.
    pub fn adopt_state(&mut self, old: &mut ParserInstance) {
        let Some(saved) = old.save_all() else { return };
        let mut live = match self.live.take().map_or_else(|| self.start(), Ok) {
            Ok(live) => live,
            Err(e) => {
                tracing::error!("{}: the new session does not start: {e}", self.tag);
                return;
            }
        };
        self.restore_into(&mut live, saved);
        self.live = Some(live);
    }

    /// Saves every session's state and ends the instance; `None` when it
    /// is faulted (its state is gone).
    fn save_all(&mut self) -> Option<SavedSessions> {
        self.live.take().map(|mut live| {
            let session = live.datagrams;
            let datagrams = save_session(&mut live, session);
            let streams: Vec<(StreamId, Option<Vec<u8>>)> = live
                .streams
                .clone()
                .into_iter()
                .map(|(id, session)| (id, save_session(&mut live, session)))
                .collect();
            SavedSessions { datagrams, streams }
        })
    }

    fn restore_into(&self, live: &mut Live, saved: SavedSessions) {
        let session = live.datagrams;
        restore_session(live, session, saved.datagrams, &self.tag);
        for (id, state) in saved.streams {
            match open_session(&live.bindings, &mut live.store, &self.config_json) {
                Ok(session) => {
                    restore_session(live, session, state, &self.tag);
                    live.streams.insert(id, session);
                }
                Err(e) => {
                    tracing::warn!("{}: stream {id} could not be reopened: {e}", self.tag)
                }
            }
        }
    }

    /// Ends a stream's parser session (its connection closed).
    pub fn close_stream(&mut self, stream: StreamId) {
        let Some(live) = &mut self.live else { return };
        let Some(session) = live.streams.remove(&stream) else {
            return;
        };
        arm_deadline(&mut live.store, deadline_ticks(&self.limits));
        if session.resource_drop(&mut live.store).is_err() {
            self.live = None;
        }
    }

    fn call<M: InputMessage>(
        &mut self,
        stream: Option<StreamId>,
        messages: &[M],
    ) -> Result<Parsed, ParseFailure> {
        let live = match &mut self.live {
            Some(live) => live,
            None => {
                self.restarts += 1;
                let mut live = self.start()?;
                if let Some(state) = &self.last_good {
                    let session = live.datagrams;
                    restore_session(&mut live, session, Some(state.clone()), &self.tag);
                }
                self.live.insert(live)
            }
        };
        live.store.data_mut().begin_call();
        arm_deadline(&mut live.store, deadline_ticks(&self.limits));
        let session = match stream {
            None => live.datagrams,
            Some(id) => match live.streams.get(&id) {
                Some(session) => *session,
                None => {
                    let session = open_session(&live.bindings, &mut live.store, &self.config_json)?;
                    live.streams.insert(id, session);
                    session
                }
            },
        };
        let packed = live.parse_packed.filter(|_| self.packed_input);
        let result = match packed {
            Some(func) if self.packed.fill(messages) => func.call(
                &mut live.store,
                session,
                &self.packed.origins,
                &self.packed.payloads,
                &self.packed.ends,
            ),
            // Contract 1.0 takes a list of messages, each its own copy.
            _ => {
                let listed: Vec<Message> = messages
                    .iter()
                    .map(|m| Message {
                        origin: m.origin(),
                        payload: m.payload().to_vec(),
                    })
                    .collect();
                live.bindings.flowlink_parser_parser().session().call_parse(
                    &mut live.store,
                    session,
                    &listed,
                )
            }
        };
        self.packed.release();
        match result {
            Ok(parsed) => {
                self.faults_in_a_row = 0;
                Ok(parsed)
            }
            Err(error) => {
                let refused = live.store.data().memory.refused;
                self.live = None;
                self.faults_in_a_row += 1;
                if self.faults_in_a_row >= POISONED_STATE_FAULTS && self.last_good.take().is_some()
                {
                    tracing::warn!(
                        "{}: {} faults in a row on instances rebuilt from the saved state: starting the next one empty",
                        self.tag,
                        self.faults_in_a_row
                    );
                }
                Err(classify_fault(&error, refused, &self.limits))
            }
        }
    }
}

/// Checks a plugin call's packed output and appends it to `out`, one
/// outcome per message: the plugin's bytes become the batch's records
/// whole when every message is kept (the common case), else the kept
/// messages' records are copied. A message refused (over `cap`, a bad
/// record) adds no flows.
fn split(parsed: Parsed, count: usize, cap: usize, out: &mut ParsedBatch) {
    let invalid = |out: &mut ParsedBatch, why: String| {
        out.outcomes
            .extend((0..count).map(|_| Err(ParseFailure::InvalidOutput(why.clone()))))
    };
    if parsed.outcomes.len() != count {
        let why = format!("{} outcomes for {count} messages", parsed.outcomes.len());
        return invalid(out, why);
    }
    let claimed: usize = parsed
        .outcomes
        .iter()
        .map(|o| o.as_ref().map_or(0, |o| o.flows as usize))
        .sum();
    if parsed.flows.len() != claimed.saturating_mul(PACKED_FLOW_LEN) {
        let why = format!(
            "{} bytes of flow records for {claimed} records",
            parsed.flows.len()
        );
        return invalid(out, why);
    }
    // Rejected records are rare: sorted by message only when there are any.
    let mut rejected: Vec<Vec<Rejected>> = Vec::new();
    if !parsed.rejected.is_empty() {
        rejected.resize_with(count, Vec::new);
        for r in parsed.rejected {
            if let Some(list) = rejected.get_mut(r.message as usize) {
                list.push(Rejected {
                    index: r.index,
                    reason: r.reason,
                });
            }
        }
    }
    let mut rejected = rejected.into_iter();
    // The output is checked once, whole. Valid (the common case), it
    // becomes the batch's records as it is, or the kept messages' records
    // are copied out of it. With a bad record somewhere, each message's
    // records are checked on their way in, and a message holding one is
    // refused.
    let output = match PackedFlows::from_bytes(parsed.flows) {
        Ok(checked) => Ok(checked),
        Err((_, bytes)) => Err(bytes),
    };
    let mut kept: Vec<std::ops::Range<usize>> = Vec::with_capacity(count);
    let mut dropped = false;
    let mut at = 0;
    for outcome in parsed.outcomes {
        let rejected = rejected.next().unwrap_or_default();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(why) => {
                out.outcomes.push(Err(ParseFailure::Rejected(why)));
                continue;
            }
        };
        let n = outcome.flows as usize;
        // Taken whatever happens, so the next message starts at its own records.
        let mine = at..at + n;
        at = mine.end;
        if n + rejected.len() > cap {
            out.outcomes.push(Err(ParseFailure::TooManyRecords {
                count: n + rejected.len(),
                cap,
            }));
            dropped |= n > 0;
            continue;
        }
        if let Err(bytes) = &output {
            let records = &bytes[mine.start * PACKED_FLOW_LEN..mine.end * PACKED_FLOW_LEN];
            if let Err(e) = out.flows.extend_checked(records) {
                out.outcomes
                    .push(Err(ParseFailure::InvalidOutput(e.to_string())));
                continue;
            }
        }
        out.outcomes.push(Ok(MessageOutcome {
            flows: n,
            rejected,
            skipped: outcome.skipped,
        }));
        kept.push(mine);
    }
    if let Ok(checked) = output {
        if !dropped && out.flows.is_empty() {
            out.flows = checked;
        } else {
            for range in kept {
                out.flows.extend_from(&checked.records()[range]);
            }
        }
    }
}

/// A call's messages as `packed-input` takes them, kept across calls so a
/// worker's calls allocate nothing here.
#[derive(Default)]
struct PackedScratch {
    origins: Vec<Origin>,
    payloads: Vec<u8>,
    ends: Vec<u32>,
}

impl PackedScratch {
    /// Payload bytes kept between calls: above a worker's batch bound
    /// (1 MiB and the message that crossed it), so only an odd huge batch
    /// (Kafka, file chunks) gives its buffer back.
    const KEEP_BYTES: usize = 4 << 20;

    /// False when the payloads do not fit the contract's 32-bit offsets
    /// (then the call takes the message list).
    fn fill<M: InputMessage>(&mut self, messages: &[M]) -> bool {
        self.origins.clear();
        self.payloads.clear();
        self.ends.clear();
        let total: usize = messages.iter().map(|m| m.payload().len()).sum();
        if u32::try_from(total).is_err() {
            return false;
        }
        self.payloads.reserve(total);
        for message in messages {
            self.origins.push(message.origin());
            self.payloads.extend_from_slice(message.payload());
            self.ends.push(self.payloads.len() as u32);
        }
        true
    }

    fn release(&mut self) {
        if self.payloads.capacity() > Self::KEEP_BYTES {
            self.payloads.clear();
            self.payloads.shrink_to(Self::KEEP_BYTES);
        }
    }
}

fn save_session(live: &mut Live, session: ResourceAny) -> Option<Vec<u8>> {
    arm_deadline(&mut live.store, 1_000);
    live.bindings
        .flowlink_parser_parser()
        .session()
        .call_save_state(&mut live.store, session)
        .ok()
}

fn restore_session(live: &mut Live, session: ResourceAny, state: Option<Vec<u8>>, tag: &str) {
    let Some(state) = state.filter(|s| !s.is_empty()) else {
        return;
    };
    arm_deadline(&mut live.store, 1_000);
    match live
        .bindings
        .flowlink_parser_parser()
        .session()
        .call_restore_state(&mut live.store, session, &state)
    {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            tracing::warn!("{tag}: the new build refused the saved state, starting empty: {why}")
        }
        Err(e) => tracing::warn!("{tag}: restoring state trapped, starting empty: {e:#}"),
    }
}

fn classify_fault(
    error: &wasmtime::Error,
    refused: Option<usize>,
    limits: &SandboxLimits,
) -> ParseFailure {
    if let Some(wanted) = refused {
        return ParseFailure::OutOfMemory {
            cap: limits.memory_bytes,
            wanted,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return ParseFailure::Timeout {
            limit_ms: limits.call_timeout.as_millis(),
        };
    }
    ParseFailure::Trap(format!("{error:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::flowlink::parser::types::{Outcome, Rejected as WitRejected};
    use flowlink_flow::packed::pack;

    fn flow(port: u16) -> Flow {
        Flow {
            src_port: port,
            ..Flow::default()
        }
    }

    fn ok(flows: u32) -> Result<Outcome, String> {
        Ok(Outcome { flows, skipped: 0 })
    }

    #[test]
    fn a_refused_message_mid_batch_costs_only_its_own_flows() {
        // Four messages: 2 good flows; 4 flows over a cap of 3; 2 flows of
        // which the second has an invalid action byte; 1 good flow. And a
        // rejected record of the last message.
        let ports: [&[u16]; 4] = [&[1, 2], &[10, 11, 12, 13], &[20, 21], &[30]];
        let mut bytes = Vec::new();
        for port in ports.iter().flat_map(|p| p.iter()) {
            pack(&flow(*port), &mut bytes);
        }
        let bad = (2 + 4 + 1) * PACKED_FLOW_LEN + 6; // message 3's 2nd record, action
        bytes[bad] = 9;
        let parsed = Parsed {
            flows: bytes,
            outcomes: vec![ok(2), ok(4), ok(2), ok(1)],
            rejected: vec![WitRejected {
                message: 3,
                index: 1,
                reason: "cut short".into(),
            }],
        };
        let mut out = ParsedBatch::default();
        split(parsed, 4, 3, &mut out);

        let ports: Vec<u16> = out.flows.to_flows().iter().map(|f| f.src_port).collect();
        assert_eq!(ports, [1, 2, 30]);
        assert!(matches!(&out.outcomes[0], Ok(o) if o.flows == 2 && o.rejected.is_empty()));
        assert!(matches!(
            out.outcomes[1],
            Err(ParseFailure::TooManyRecords { count: 4, cap: 3 })
        ));
        assert!(matches!(
            out.outcomes[2],
            Err(ParseFailure::InvalidOutput(_))
        ));
        match &out.outcomes[3] {
            Ok(o) => {
                assert_eq!(o.flows, 1);
                assert_eq!(o.rejected.len(), 1);
                assert_eq!(o.rejected[0].reason, "cut short");
            }
            Err(e) => panic!("the last message failed: {e}"),
        }
    }

    #[test]
    fn valid_output_keeps_every_message_but_one_over_the_cap() {
        // Every record valid (the output is taken as checked, whole): the
        // message over a cap of 3 is left out, the others copied in order.
        let ports: [&[u16]; 3] = [&[1, 2], &[10, 11, 12, 13], &[20]];
        let mut bytes = Vec::new();
        for port in ports.iter().flat_map(|p| p.iter()) {
            pack(&flow(*port), &mut bytes);
        }
        let parsed = Parsed {
            flows: bytes,
            outcomes: vec![ok(2), ok(4), ok(1)],
            rejected: Vec::new(),
        };
        let mut out = ParsedBatch::default();
        split(parsed, 3, 3, &mut out);
        let kept: Vec<u16> = out.flows.to_flows().iter().map(|f| f.src_port).collect();
        assert_eq!(kept, [1, 2, 20]);
        assert!(matches!(
            out.outcomes[1],
            Err(ParseFailure::TooManyRecords { count: 4, cap: 3 })
        ));
        assert!(matches!(&out.outcomes[2], Ok(o) if o.flows == 1));
    }

    #[test]
    fn output_that_does_not_add_up_fails_every_message() {
        let parsed = Parsed {
            flows: vec![0; PACKED_FLOW_LEN],
            outcomes: vec![ok(1), ok(1)],
            rejected: Vec::new(),
        };
        let mut out = ParsedBatch::default();
        split(parsed, 2, 100, &mut out);
        assert!(out.flows.is_empty());
        assert_eq!(out.outcomes.len(), 2);
        assert!(
            out.outcomes
                .iter()
                .all(|o| matches!(o, Err(ParseFailure::InvalidOutput(_))))
        );
    }
}

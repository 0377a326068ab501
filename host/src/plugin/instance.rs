//! One live parser session inside its own store: the unit that a trap,
//! a timeout or an out-of-memory throws away and rebuilds.

use std::sync::Arc;

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap};

use super::bindings::{Flow, FlowParser, Origin, Rejected};
use super::engine::{EPOCH_TICK, PluginEngine};
use super::registry::LoadedPlugin;
use super::sandbox::{SandboxLimits, SandboxState};

/// What one message produced.
#[derive(Debug, Default)]
pub struct ParsedMessage {
    pub flows: Vec<Flow>,
    pub rejected: Vec<Rejected>,
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
    #[error("plugin could not be started: {0}")]
    Unavailable(String),
}

impl ParseFailure {
    /// True when the plugin misbehaved (as opposed to refusing bad input).
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(self, ParseFailure::Rejected(_))
    }
}

struct Live {
    store: Store<SandboxState>,
    bindings: FlowParser,
    session: ResourceAny,
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
}

pub(super) fn new_store(
    engine: &PluginEngine,
    limits: &SandboxLimits,
    tag: Arc<str>,
) -> Store<SandboxState> {
    let mut store = Store::new(engine.engine(), SandboxState::new(limits, tag));
    store.limiter(|state| &mut state.memory);
    // The deadline must be set before instantiating: it defaults to "now",
    // which would trap the start function.
    store.set_epoch_deadline(deadline_ticks(limits));
    store.epoch_deadline_trap();
    store
}

fn deadline_ticks(limits: &SandboxLimits) -> u64 {
    // +1: the tick in progress may be almost over when the call starts.
    (limits.call_timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

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
        };
        instance.live = Some(instance.start()?);
        Ok(instance)
    }

    fn start(&self) -> Result<Live, ParseFailure> {
        let mut store = new_store(&self.engine, &self.limits, self.tag.clone());
        let bindings = self
            .plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| ParseFailure::Unavailable(format!("instantiating: {e:#}")))?;
        store.set_epoch_deadline(deadline_ticks(&self.limits));
        let opened = bindings
            .flowlink_parser_parser()
            .session()
            .call_open(&mut store, &self.config_json)
            .map_err(|e| ParseFailure::Unavailable(format!("open() trapped: {e:#}")))?;
        let session = opened.map_err(ParseFailure::Unavailable)?;
        Ok(Live {
            store,
            bindings,
            session,
        })
    }

    /// Parses one message. On a fault the instance is discarded and the next
    /// call starts a fresh one; template state learned so far is lost with it.
    pub fn parse(
        &mut self,
        origin: &Origin,
        payload: &[u8],
    ) -> Result<ParsedMessage, ParseFailure> {
        let live = match &mut self.live {
            Some(live) => live,
            None => {
                self.restarts += 1;
                self.live.insert(self.start()?)
            }
        };
        live.store.data_mut().begin_call();
        live.store.set_epoch_deadline(deadline_ticks(&self.limits));
        let result = live.bindings.flowlink_parser_parser().session().call_parse(
            &mut live.store,
            live.session,
            *origin,
            payload,
        );
        match result {
            Ok(Ok(batch)) => {
                let count = batch.flows.len() + batch.rejected.len();
                if count > self.limits.max_flows_per_message {
                    return Err(ParseFailure::TooManyRecords {
                        count,
                        cap: self.limits.max_flows_per_message,
                    });
                }
                Ok(ParsedMessage {
                    flows: batch.flows,
                    rejected: batch.rejected,
                })
            }
            Ok(Err(reason)) => Err(ParseFailure::Rejected(reason)),
            Err(error) => {
                let refused = live.store.data().memory.refused;
                self.live = None;
                Err(classify_fault(&error, refused, &self.limits))
            }
        }
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

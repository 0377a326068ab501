//! What a plugin may use: no files, no network, no environment; a memory
//! cap, a call deadline, a bounded amount of output and of log lines.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{FlowParserImports, LogLevel, flowlink};
use super::epoch_ticker::EpochTicker;

/// The sandbox takes its limits as the configuration describes them
/// (`plugin_timeout_ms`, `plugin_memory_mb`, `plugin_max_flows_per_message`
/// and their per-parser forms); the defaults live there, once.
pub type SandboxLimits = crate::config::ParserLimits;

/// Log lines a plugin may write per call before the rest are counted, not shown.
const LOG_LINES_PER_CALL: u32 = 20;
/// Longer log messages are cut: a plugin must not be able to flood the log.
const LOG_LINE_MAX: usize = 1024;

/// The data of one plugin `Store`.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: MemoryCap,
    /// "plugin=netflow consumer=edge" — prefixed to everything the plugin logs.
    tag: Arc<str>,
    log_lines: u32,
    ticker: Arc<EpochTicker>,
}

impl SandboxState {
    pub(super) fn new(limits: &SandboxLimits, tag: Arc<str>, ticker: Arc<EpochTicker>) -> Self {
        // Nothing granted: no preopened directories, no environment, no
        // arguments, no stdio, no sockets and no name lookups.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        SandboxState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: limits.memory_bytes,
                refused: None,
                peak: 0,
            },
            tag,
            log_lines: 0,
            ticker,
        }
    }

    /// Called before each call into the plugin.
    pub(super) fn begin_call(&mut self) {
        self.log_lines = 0;
        self.memory.refused = None;
    }
}

/// Sets `store`'s call deadline `ticks` epoch ticks from now, telling the
/// ticker (so it keeps, or goes back to, its fast pace). Every deadline
/// goes through here.
pub(super) fn arm_deadline(store: &mut Store<SandboxState>, ticks: u64) {
    store.data().ticker.note_deadline();
    store.set_epoch_deadline(ticks);
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl flowlink::parser::types::Host for SandboxState {}

impl FlowParserImports for SandboxState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > LOG_LINES_PER_CALL {
            if self.log_lines == LOG_LINES_PER_CALL + 1 {
                tracing::warn!(
                    target: "flowlink::plugin",
                    "{}: over {LOG_LINES_PER_CALL} log lines in one call; the rest are dropped",
                    self.tag
                );
            }
            return;
        }
        let mut message = message;
        if message.len() > LOG_LINE_MAX {
            let mut cut = LOG_LINE_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let tag = &*self.tag;
        match level {
            LogLevel::Error => tracing::error!(target: "flowlink::plugin", "{tag}: {message}"),
            LogLevel::Warn => tracing::warn!(target: "flowlink::plugin", "{tag}: {message}"),
            LogLevel::Info => tracing::info!(target: "flowlink::plugin", "{tag}: {message}"),
            LogLevel::Debug => tracing::debug!(target: "flowlink::plugin", "{tag}: {message}"),
            LogLevel::Trace => tracing::trace!(target: "flowlink::plugin", "{tag}: {message}"),
        }
    }
}

/// Refuses linear-memory growth past the cap, and remembers that it did so
/// the trap that follows can be reported as out-of-memory.
pub(super) struct MemoryCap {
    cap: usize,
    pub(super) refused: Option<usize>,
    /// The largest linear memory granted so far, bytes.
    pub(super) peak: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            // An error (not `Ok(false)`) traps at once: a Rust guest would
            // otherwise abort on allocation failure anyway, with less context.
            wasmtime::bail!(
                "plugin memory cap of {} bytes exceeded (wanted {desired})",
                self.cap
            );
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

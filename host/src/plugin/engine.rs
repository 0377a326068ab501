//! The process-wide wasmtime engine, its linker, the epoch ticker that
//! enforces call deadlines, and the on-disk cache of compiled components.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use super::bindings::FlowParser;
use super::epoch_ticker::{EPOCH_TICK, EpochTicker};
use super::sandbox::{SandboxLimits, SandboxState, arm_deadline};

/// One per process: compiled components are tied to the engine that made them.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<SandboxState>,
    cache_dir: Option<PathBuf>,
    ticker: Arc<EpochTicker>,
}

/// How a component was obtained, for logs and the load-time benchmark.
#[derive(Debug, Clone)]
pub struct LoadStats {
    pub from_cache: bool,
    pub elapsed: Duration,
    /// SHA-256 of the `.wasm`, hex: a swap of identical bytes is no swap.
    pub digest: String,
}

impl PluginEngine {
    /// `cache_dir`: where compiled components (`.cwasm`) are kept; `None`
    /// compiles on every load.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Self>> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // For profiling plugins with `perf`: the guest's functions named in
        // /tmp/perf-PID.map. perf uses it for code compiled in the process;
        // code mapped from the .cwasm cache shows as that file's offsets.
        if std::env::var("FLOWLINK_WASM_PERFMAP").is_ok_and(|v| !v.is_empty() && v != "0") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)
            .map_err(wasm_error)
            .context("creating the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        // A std guest imports wasi:cli, wasi:io, wasi:random even when unused;
        // they are linked against a context that grants nothing (see sandbox.rs).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(wasm_error)
            .context("linking WASI")?;
        FlowParser::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(wasm_error)
            .context("linking the flowlink host functions")?;

        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Arc::new(PluginEngine {
            engine,
            linker,
            cache_dir,
            ticker,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(super) fn linker(&self) -> &Linker<SandboxState> {
        &self.linker
    }

    /// Compiles (or loads from the cache) the component in `path`.
    pub fn load_component(&self, path: &Path) -> Result<(Component, LoadStats)> {
        let started = Instant::now();
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let digest = hex::encode(Sha256::digest(&wasm));
        let stats = |from_cache| LoadStats {
            from_cache,
            elapsed: started.elapsed(),
            digest: digest.clone(),
        };
        let Some(cache_dir) = &self.cache_dir else {
            let component = self.compile(&wasm, path)?;
            return Ok((component, stats(false)));
        };
        let cached = cache_dir.join(self.cache_file_name(&digest));
        if cached.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name), in
            // a directory only flowlink writes; wasmtime re-checks the header.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok((component, stats(true))),
                Err(e) => tracing::warn!(
                    cache = %cached.display(),
                    "cached compiled plugin unusable, recompiling: {e:#}"
                ),
            }
        }
        let component = self.compile(&wasm, path)?;
        if let Err(e) = self.write_cache(&component, cache_dir, &cached) {
            tracing::warn!(cache = %cached.display(), "could not cache compiled plugin: {e:#}");
        }
        Ok((component, stats(false)))
    }

    fn compile(&self, wasm: &[u8], path: &Path) -> Result<Component> {
        Component::new(&self.engine, wasm)
            .map_err(wasm_error)
            .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))
    }

    /// Content hash of the wasm plus the engine's compatibility hash, so a
    /// wasmtime upgrade or a config change never loads stale machine code.
    fn cache_file_name(&self, digest: &str) -> String {
        let mut engine_hash = DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        format!("{}-{:016x}.cwasm", digest, engine_hash.finish())
    }

    /// Atomic: a crash mid-write never leaves a torn `.cwasm`.
    fn write_cache(&self, component: &Component, dir: &Path, target: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let bytes = component.serialize()?;
        let name = target.file_name().context("a cache file name")?;
        crate::durable_file::write_atomically(dir, &name.to_string_lossy(), &bytes)?;
        Ok(())
    }
}

impl PluginEngine {
    /// A store for one plugin instance: its memory cap and call deadline
    /// armed before anything runs in it.
    pub(super) fn new_store(&self, limits: &SandboxLimits, tag: Arc<str>) -> Store<SandboxState> {
        let state = SandboxState::new(limits, tag, self.ticker.clone());
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.memory);
        // The deadline must be set before instantiating: it defaults to "now",
        // which would trap the start function.
        arm_deadline(&mut store, deadline_ticks(limits));
        store.epoch_deadline_trap();
        store
    }
}

/// Epoch ticks of one call's deadline under `limits`.
pub(super) fn deadline_ticks(limits: &SandboxLimits) -> u64 {
    // +1: the tick in progress may be almost over when the call starts.
    (limits.call_timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// wasmtime 48 has its own error type; this makes it an `anyhow::Error`
/// so the usual `.context(..)` applies.
pub(super) fn wasm_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from(error)
}

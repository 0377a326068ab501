//! Hot swap. The plugin directory is watched; a component renamed into it,
//! or closed after being written, is compiled and checked off the hot path (it loads, reports its name, opens
//! a session with every consumer's properties, survives an empty message),
//! then published in the registry. Workers move their sessions to it
//! between two batches, carrying template state across. A component that
//! fails any check leaves the running one in place, and the log says why.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::{
    IpAddr, LoadedPlugin, Origin, ParserInstance, PluginEngine, PluginRegistry, SandboxLimits,
};

/// Writes come in bursts (create, then data): act once they settle.
const SETTLE: Duration = Duration::from_millis(300);

/// A consumer's use of a plugin, to check a new build against.
#[derive(Clone)]
pub struct PluginUse {
    pub consumer: String,
    pub plugin: String,
    pub properties_json: String,
    pub limits: SandboxLimits,
    /// `parser.sha256`: a build with another digest is not swapped in.
    pub sha256: Option<String>,
}

/// The running consumers' uses of plugins, shared with the watcher: a
/// reload replaces them, so a consumer added by SIGHUP is checked too.
#[derive(Default)]
pub struct PluginUses(RwLock<Vec<PluginUse>>);

impl PluginUses {
    pub fn new(uses: Vec<PluginUse>) -> Arc<Self> {
        Arc::new(PluginUses(RwLock::new(uses)))
    }

    pub fn set(&self, uses: Vec<PluginUse>) {
        *self.0.write().expect("plugin uses") = uses;
    }

    fn of(&self, plugin: &str) -> Vec<PluginUse> {
        self.0
            .read()
            .expect("plugin uses")
            .iter()
            .filter(|u| u.plugin == plugin)
            .cloned()
            .collect()
    }
}

/// Keeps the watch alive; dropping it stops hot swapping.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl PluginWatcher {
    pub fn start(
        engine: Arc<PluginEngine>,
        registry: Arc<PluginRegistry>,
        dir: &Path,
        uses: Arc<PluginUses>,
    ) -> Result<PluginWatcher> {
        let (tx, rx) = channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && complete_file(&event.kind)
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })
            .context("starting the plugin directory watcher")?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching plugin_dir {}", dir.display()))?;
        std::thread::Builder::new()
            .name("plugin-watcher".into())
            .spawn(move || settle_and_swap(rx, &engine, &registry, &uses))
            .context("starting the plugin watcher thread")?;
        tracing::info!(dir = %dir.display(), "watching for new plugin builds");
        Ok(PluginWatcher { _watcher: watcher })
    }
}

/// A file is looked at only once it is whole: renamed into place (the
/// documented way to deploy) or closed after writing (a copy in place).
/// Creation and each write of a copy under way are not such moments, so a
/// half-written file is never compiled.
fn complete_file(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
    )
}

fn settle_and_swap(
    events: Receiver<PathBuf>,
    engine: &Arc<PluginEngine>,
    registry: &PluginRegistry,
    uses: &PluginUses,
) {
    while let Ok(first) = events.recv() {
        let mut changed = BTreeSet::from([first]);
        loop {
            match events.recv_timeout(SETTLE) {
                Ok(path) => {
                    changed.insert(path);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        for path in changed {
            if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
                try_swap(engine, registry, uses, &path);
            }
        }
    }
}

fn try_swap(engine: &Arc<PluginEngine>, registry: &PluginRegistry, uses: &PluginUses, path: &Path) {
    let plugin = match LoadedPlugin::load(engine, path) {
        Ok(plugin) => plugin,
        Err(e) => {
            tracing::error!(
                "plugin {} not swapped in, the running version stays: {e:#}",
                path.display()
            );
            return;
        }
    };
    let running = registry.get(&plugin.name);
    if running
        .as_ref()
        .is_some_and(|r| r.load.digest == plugin.load.digest)
    {
        return;
    }
    for check in &uses.of(&plugin.name) {
        if let Err(why) = plugin
            .check_pin(check.sha256.as_deref())
            .and_then(|()| smoke_test(engine, &plugin, check))
        {
            tracing::error!(
                "plugin {} ({} {}) not swapped in, the running version stays: consumer {:?}: {why}",
                path.display(),
                plugin.name,
                plugin.version,
                check.consumer
            );
            return;
        }
    }
    let old = registry.replace(plugin.clone());
    tracing::info!(
        plugin = %plugin.name,
        from = %old.map_or_else(|| "none".to_owned(), |o| o.version.clone()),
        to = %plugin.version,
        path = %path.display(),
        "swapped in a new plugin build"
    );
}

/// The new build opens a session with the consumer's properties and
/// survives an empty message (refusing it is fine, trapping is not).
fn smoke_test(
    engine: &Arc<PluginEngine>,
    plugin: &Arc<LoadedPlugin>,
    check: &PluginUse,
) -> Result<(), String> {
    let tag: Arc<str> = format!(
        "plugin={} consumer={} smoke-test",
        plugin.name, check.consumer
    )
    .into();
    let mut session = ParserInstance::new(
        engine.clone(),
        plugin.clone(),
        check.properties_json.clone(),
        check.limits,
        tag,
    )
    .map_err(|e| e.to_string())?;
    let origin = Origin {
        exporter: IpAddr::V4(0),
        port: 0,
        received_ms: 0,
    };
    match session.parse(&origin, &[]) {
        Err(fault) if fault.is_plugin_fault() => Err(format!("an empty message: {fault}")),
        _ => Ok(()),
    }
}

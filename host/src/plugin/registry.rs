//! The plugins found in the plugin directory, by the name each reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow};

use super::engine::PluginEngine;
use super::loader::LoadedPlugin;

/// Every plugin of a directory, keyed by name. Shared by the workers and
/// the plugin watcher: a hot swap replaces an entry and bumps the
/// generation, which workers compare between batches.
#[derive(Default)]
pub struct PluginRegistry {
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    generation: AtomicU64,
}

impl PluginRegistry {
    /// Loads every `*.wasm` in `dir`. A file that fails to load is logged and
    /// skipped (it may be unused); two files claiming one name is an error.
    pub fn load_dir(engine: &Arc<PluginEngine>, dir: &Path) -> Result<PluginRegistry> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading plugin_dir {}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        let registry = PluginRegistry::default();
        for path in paths {
            match LoadedPlugin::load(engine, &path) {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %plugin.name,
                        version = %plugin.version,
                        path = %path.display(),
                        cached = plugin.load.from_cache,
                        load_ms = plugin.load.elapsed.as_secs_f64() * 1e3,
                        "loaded parser plugin"
                    );
                    registry.insert(plugin)?;
                }
                Err(e) => tracing::error!("skipping plugin {}: {e:#}", path.display()),
            }
        }
        Ok(registry)
    }

    /// The built-in plugins (see [`super::builtin_plugin_dir`]), then
    /// `plugin_dir`'s, which override built-in ones of the same name.
    pub fn load_with_builtin(
        engine: &Arc<PluginEngine>,
        builtin: Option<&Path>,
        plugin_dir: Option<&Path>,
    ) -> Result<PluginRegistry> {
        // A plugin_dir that is the built-in folder (a build run in place)
        // is loaded once, not compiled and logged as overriding itself.
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        let builtin = builtin.filter(|b| plugin_dir.is_none_or(|dir| !same(b, dir)));
        let registry = match builtin {
            Some(dir) => PluginRegistry::load_dir(engine, dir)?,
            None => PluginRegistry::default(),
        };
        if let Some(dir) = plugin_dir {
            let configured = PluginRegistry::load_dir(engine, dir)?;
            for plugin in configured.all() {
                if let Some(old) = registry.get(&plugin.name) {
                    tracing::info!(
                        plugin = %plugin.name,
                        path = %plugin.path.display(),
                        built_in = %old.path.display(),
                        "plugin_dir overrides the built-in plugin"
                    );
                }
                registry
                    .plugins
                    .write()
                    .expect("plugin registry")
                    .insert(plugin.name.clone(), plugin);
            }
        }
        Ok(registry)
    }

    fn insert(&self, plugin: Arc<LoadedPlugin>) -> Result<()> {
        let mut plugins = self.plugins.write().expect("plugin registry");
        if let Some(existing) = plugins.get(&plugin.name) {
            return Err(anyhow!(
                "two plugins are named {:?}: {} and {}",
                plugin.name,
                existing.path.display(),
                plugin.path.display()
            ));
        }
        plugins.insert(plugin.name.clone(), plugin);
        Ok(())
    }

    /// Puts `plugin` in place of the one of the same name (hot swap);
    /// returns the one it replaces.
    pub fn replace(&self, plugin: Arc<LoadedPlugin>) -> Option<Arc<LoadedPlugin>> {
        let old = self
            .plugins
            .write()
            .expect("plugin registry")
            .insert(plugin.name.clone(), plugin);
        self.generation.fetch_add(1, Ordering::Release);
        old
    }

    /// Changes with every swap.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("plugin registry")
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.plugins
            .read()
            .expect("plugin registry")
            .keys()
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("plugin registry")
            .values()
            .cloned()
            .collect()
    }
}

/// Finds a plugin by path (anything ending in `.wasm` or naming a file) or by
/// name in `plugin_dir`.
pub fn resolve_plugin(
    engine: &Arc<PluginEngine>,
    plugin: &str,
    plugin_dir: &Path,
) -> Result<Arc<LoadedPlugin>> {
    let as_path = Path::new(plugin);
    if plugin.ends_with(".wasm") || as_path.is_file() {
        return LoadedPlugin::load(engine, as_path);
    }
    let registry = PluginRegistry::load_dir(engine, plugin_dir)?;
    match registry.get(plugin) {
        Some(found) => Ok(found.clone()),
        None => anyhow::bail!(
            "no plugin named {plugin:?} in {} (found: {})",
            plugin_dir.display(),
            registry.names().join(", ")
        ),
    }
}

//! Compiling and checking one plugin component: it must import only what
//! flowlink provides, export the parser interface, and name itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::bindings::FlowParserPre;
use super::engine::{LoadStats, PluginEngine, wasm_error};
use super::sandbox::{SandboxLimits, SandboxState};

/// A compiled, linked component, ready to instantiate.
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub formats: Vec<String>,
    pub path: PathBuf,
    pub load: LoadStats,
    pub(super) pre: FlowParserPre<SandboxState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish()
    }
}

impl LoadedPlugin {
    /// Compiles and links `path`, then asks the component for its `info()`
    /// under the default sandbox limits.
    pub fn load(engine: &Arc<PluginEngine>, path: &Path) -> Result<Arc<LoadedPlugin>> {
        let (component, load) = engine.load_component(path)?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(wasm_error)
            .with_context(|| {
                format!(
                    "{} imports something flowlink does not provide (plugins may import only \
                 flowlink:parser@0.3.0 and WASI; a plugin built against another version of \
                 the contract must be rebuilt)",
                    path.display()
                )
            })?;
        let pre = FlowParserPre::new(instance_pre)
            .map_err(wasm_error)
            .with_context(|| {
                format!(
                    "{} does not export the flowlink:parser/parser@0.3.0 interface",
                    path.display()
                )
            })?;
        let tag: Arc<str> = format!("plugin={}", path.display()).into();
        let limits = SandboxLimits::default();
        let mut store = engine.new_store(&limits, tag);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(wasm_error)
            .with_context(|| format!("instantiating {}", path.display()))?;
        let info = bindings
            .flowlink_parser_parser()
            .call_info(&mut store)
            .map_err(wasm_error)
            .with_context(|| format!("calling info() of {}", path.display()))?;
        if info.name.is_empty()
            || !info
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "{} reports an invalid parser name {:?}",
                path.display(),
                info.name
            );
        }
        Ok(Arc::new(LoadedPlugin {
            name: info.name,
            version: info.version,
            formats: info.formats,
            path: path.to_owned(),
            load,
            pre,
        }))
    }
}

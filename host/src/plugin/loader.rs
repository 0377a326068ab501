//! Compiling and checking one plugin component: it must import only what
//! flowlink provides, export the parser interface, and name itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use wasmtime::component::{
    Component, ComponentExportIndex, Func, InstancePre, ResourceAny, TypedFunc,
};
use wasmtime::{AsContextMut, Store};

use super::WIT_VERSION;
use super::bindings::{FlowParser, FlowParserIndices, Origin, Parsed};
use super::engine::{LoadStats, PluginEngine, wasm_error};
use super::sandbox::{SandboxLimits, SandboxState};

/// A compiled, linked component, ready to instantiate.
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    pub formats: Vec<String>,
    /// The `flowlink:parser` version it was built against (same major as
    /// [`WIT_VERSION`]).
    pub contract: String,
    /// Everything it imports (all granted, or it would not have loaded).
    pub imports: Vec<String>,
    pub path: PathBuf,
    pub load: LoadStats,
    linked: Linked,
}

/// What making an instance needs, worked out once when the plugin loads.
struct Linked {
    instance_pre: InstancePre<SandboxState>,
    /// Where the generated bindings' exports are.
    indices: FlowParserIndices,
    /// `packed-input.parse-packed` (contract 1.1.0), when the component
    /// exports it: the host then hands a call's payloads in one buffer.
    packed_input: Option<ComponentExportIndex>,
}

impl Linked {
    fn instantiate(
        &self,
        mut store: impl AsContextMut<Data = SandboxState>,
    ) -> Result<PluginInstance> {
        let instance = self
            .instance_pre
            .instantiate(&mut store)
            .map_err(wasm_error)?;
        let bindings = self
            .indices
            .load(&mut store, &instance)
            .map_err(wasm_error)?;
        let parse_packed = self
            .packed_input
            .and_then(|index| instance.get_func(&mut store, index))
            .map(|func| ParsePacked::check(func, &mut store))
            .transpose()?;
        Ok(PluginInstance {
            bindings,
            parse_packed,
        })
    }
}

/// One instance of a plugin: the generated bindings, and the optional
/// exports a component of an older minor may lack.
pub(super) struct PluginInstance {
    pub bindings: FlowParser,
    pub parse_packed: Option<ParsePacked>,
}

/// The parameters of `packed-input.parse-packed`.
type ParsePackedParams<'a> = (ResourceAny, &'a [Origin], &'a [u8], &'a [u32]);

/// `packed-input.parse-packed` of one instance, its type checked when the
/// instance was made: only [`Linked::instantiate`] builds one.
#[derive(Clone, Copy)]
pub(super) struct ParsePacked(Func);

impl ParsePacked {
    fn check(func: Func, store: impl AsContextMut) -> Result<Self> {
        func.typed::<ParsePackedParams<'_>, (Parsed,)>(&store)
            .map_err(wasm_error)
            .context(
                "it exports flowlink:parser/packed-input.parse-packed, but not in the form \
                 the contract defines",
            )?;
        Ok(ParsePacked(func))
    }

    /// Calls it in the instance's store. No type check per call: that
    /// cost as much as the packed input saves on calls of a few messages.
    pub(super) fn call(
        self,
        store: &mut Store<SandboxState>,
        session: ResourceAny,
        origins: &[Origin],
        payloads: &[u8],
        ends: &[u32],
    ) -> wasmtime::Result<Parsed> {
        // SAFETY: `check` type-checked this function against exactly these
        // parameters and results (as the generated bindings do for
        // `session.parse`); a store of another instance makes wasmtime
        // panic, not misbehave.
        let typed = unsafe { TypedFunc::<ParsePackedParams<'_>, (Parsed,)>::new_unchecked(self.0) };
        let (parsed,) = typed.call(store, (session, origins, payloads, ends))?;
        Ok(parsed)
    }
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
    /// Refuses this build when a consumer pins another one
    /// (`parser.sha256`); the reason names both digests and the file.
    pub fn check_pin(&self, pin: Option<&str>) -> Result<(), String> {
        match pin {
            Some(pin) if pin != self.load.digest => Err(format!(
                "parser.sha256 pins {pin}, but {} ({} {}) has sha256 {}",
                self.path.display(),
                self.name,
                self.version,
                self.load.digest
            )),
            _ => Ok(()),
        }
    }

    /// Compiles and links `path`, then asks the component for its `info()`
    /// under the default sandbox limits. Refused, with the reason: a
    /// component of another contract major, one that imports what the
    /// sandbox does not grant, one that exports no parser.
    pub fn load(engine: &Arc<PluginEngine>, path: &Path) -> Result<Arc<LoadedPlugin>> {
        let (component, load) = engine.load_component(path)?;
        let contract = contract_version(engine, &component)
            .with_context(|| format!("{} is not a flowlink parser", path.display()))?;
        let imports = import_names(engine, &component);
        check_imports(&imports).with_context(|| format!("{} is refused", path.display()))?;
        let instance_pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(wasm_error)
            .with_context(|| {
                format!(
                    "{} (contract {contract}) imports something this flowlink (contract \
                     {WIT_VERSION}) does not provide; a build against a newer minor \
                     of the contract must be rebuilt against {WIT_VERSION} or run on a newer flowlink",
                    path.display()
                )
            })?;
        let indices = FlowParserIndices::new(&instance_pre)
            .map_err(wasm_error)
            .with_context(|| {
                format!(
                    "{} exports flowlink:parser/parser@{contract}, but not in the form {WIT_VERSION} \
                     defines",
                    path.display()
                )
            })?;
        let linked = Linked {
            instance_pre,
            indices,
            packed_input: packed_input_export(&component),
        };
        let tag: Arc<str> = format!("plugin={}", path.display()).into();
        let limits = SandboxLimits::default();
        let mut store = engine.new_store(&limits, tag);
        let instance = linked
            .instantiate(&mut store)
            .with_context(|| format!("instantiating {}", path.display()))?;
        let info = instance
            .bindings
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
            contract,
            imports,
            path: path.to_owned(),
            load,
            linked,
        }))
    }

    /// A new instance of the component in `store`.
    pub(super) fn instantiate(&self, store: &mut Store<SandboxState>) -> Result<PluginInstance> {
        self.linked.instantiate(store)
    }

    /// Whether the host hands this component a call's payloads in one
    /// buffer (`packed-input`, contract 1.1.0) or as a list of messages.
    pub fn takes_packed_input(&self) -> bool {
        self.linked.packed_input.is_some()
    }
}

/// The export name of the packed input. wasmtime looks names up by semver,
/// so a component of a later 1.x minor is found by it too.
const PACKED_INPUT: &str = "flowlink:parser/packed-input@1.1.0";

fn packed_input_export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, PACKED_INPUT)?;
    component.get_export_index(Some(&interface), "parse-packed")
}

/// The `flowlink:parser` version the component was built against, from the
/// name of its `parser` export; refused unless its major is the host's.
/// Within a major, changes are additive: wasmtime matches the export of an
/// older or newer minor by semver, and any function the host calls must exist.
fn contract_version(engine: &PluginEngine, component: &Component) -> Result<String> {
    const EXPORT: &str = "flowlink:parser/parser@";
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine.engine()).map(|(name, _)| name).collect();
    let Some(version) = exports.iter().find_map(|name| name.strip_prefix(EXPORT)) else {
        bail!(
            "it does not export the flowlink:parser/parser interface (it exports: {})",
            if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            }
        );
    };
    if !same_major(version, WIT_VERSION) {
        bail!(
            "it was built against the contract flowlink:parser@{version}; this flowlink takes \
             flowlink:parser@{} (any {}.x): rebuild it with the SDK of this flowlink \
             (flowlink plugin new writes one)",
            WIT_VERSION,
            major(WIT_VERSION)
        );
    }
    Ok(version.to_owned())
}

/// Semver compatibility as wasmtime matches names: same major from 1.0 on;
/// below 1.0, the same minor.
fn same_major(a: &str, b: &str) -> bool {
    major(a) == major(b) && !major(a).is_empty()
}

/// `1` of `1.2.3`, `0.3` of `0.3.1`.
fn major(version: &str) -> &str {
    let version = version.split(['-', '+']).next().unwrap_or(version);
    let mut parts = version.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(_)) => version.rsplitn(2, '.').last().unwrap_or(version),
        (Some(major), _) => major,
        _ => "",
    }
}

/// What a parser may import: the flowlink host functions and the parts of
/// WASI a std guest links by default, served by a context that grants
/// nothing (no files, no environment; see sandbox.rs).
const GRANTED_IMPORTS: &[&str] = &[
    "flowlink:parser/",
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

fn import_names(engine: &PluginEngine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine.engine())
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Refuses a component that imports anything else (sockets, HTTP, another
/// package), naming every such import.
fn check_imports(imports: &[String]) -> Result<()> {
    let refused: Vec<&str> = imports
        .iter()
        .map(String::as_str)
        .filter(|name| *name != "log" && !GRANTED_IMPORTS.iter().any(|p| name.starts_with(p)))
        .collect();
    if !refused.is_empty() {
        bail!(
            "it imports what the sandbox does not grant: {} (a parser gets its messages \
             from the host and has no network, files or environment)",
            refused.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_follow_semver() {
        assert_eq!(major("1.0.0"), "1");
        assert_eq!(major("1.7.2"), "1");
        assert_eq!(major("2.0.0-rc1"), "2");
        assert_eq!(major("0.3.1"), "0.3");
        assert!(same_major("1.0.0", "1.9.0"));
        assert!(same_major("0.3.0", "0.3.4"));
        assert!(!same_major("1.0.0", "2.0.0"));
        assert!(!same_major("0.3.0", "0.4.0"));
        assert!(!same_major("", ""));
    }

    #[test]
    fn the_host_version_is_the_wit_files() {
        let wit = include_str!("../../../crates/sdk/wit/parser.wit");
        assert!(
            wit.contains(&format!("package flowlink:parser@{WIT_VERSION};")),
            "WIT_VERSION {WIT_VERSION} differs from wit/parser.wit"
        );
    }
}

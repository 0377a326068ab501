//! The WebAssembly plugin runtime: one engine per process, compiled
//! components cached on disk, every parser call sandboxed.

mod address;
mod bindings;
mod builtin;
mod engine;
mod epoch_ticker;
mod instance;
mod loader;
mod registry;
mod sandbox;
mod watcher;

pub use address::ip_to_wit;
pub use bindings::{IpAddr, Message, Origin};
pub use builtin::{builtin_plugin_candidates, builtin_plugin_dir};
pub use engine::PluginEngine;
pub use instance::{
    FaultReplay, InputMessage, MessageOutcome, ParseFailure, ParsedBatch, ParsedMessage,
    ParserInstance, StreamId,
};
pub use loader::LoadedPlugin;
pub use registry::{PluginRegistry, resolve_plugin};
pub use sandbox::SandboxLimits;
pub use watcher::{PluginUse, PluginUses, PluginWatcher};

/// The `flowlink:parser` contract this host speaks (`wit/parser.wit`). It
/// loads components of the same major.
pub const WIT_VERSION: &str = "1.1.0";

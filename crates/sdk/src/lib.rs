//! The flowlink plugin SDK: write a flow-format parser as plain Rust, export it
//! as a WebAssembly component with one macro.
//!
//! ```
//! use flowlink_plugin_sdk::{Batch, Origin, Parser, ParserInfo};
//!
//! struct MyParser;
//!
//! impl Parser for MyParser {
//!     fn info() -> ParserInfo { ParserInfo::new("my-format", env!("CARGO_PKG_VERSION"), &["my-format"]) }
//!     fn open(_config: &str) -> Result<Self, String> { Ok(MyParser) }
//!     fn parse(&mut self, _origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
//!         if payload.is_empty() {
//!             return Err("empty message".into());
//!         }
//!         out.reject(0, "nothing here yet");
//!         Ok(())
//!     }
//! }
//!
//! flowlink_plugin_sdk::export_parser!(MyParser);
//!
//! // Natively, the same parser runs under the test harness:
//! let out = flowlink_plugin_sdk::testing::run::<MyParser>(
//!     "{}",
//!     flowlink_plugin_sdk::testing::origin([192, 0, 2, 1], 2055),
//!     &[b"x", b""],
//! )
//! .unwrap();
//! assert_eq!(out[0].flows().len(), 0);
//! assert!(matches!(out[1], flowlink_plugin_sdk::testing::Outcome::Failed(_)));
//! ```
//!
//! Settings: parse `open`'s JSON into a struct of your own with
//! [`properties()`]; unknown keys are then refused by name.
//!
//! Build with `cargo build --target wasm32-wasip2` (or `flowlink plugin
//! build`); the result is a component
//! the host loads from its plugin directory. The same crate compiles natively
//! (the export is only emitted for wasm32), so parsing code is unit-tested
//! with a plain `cargo test`.

mod component;
pub mod log;
pub mod properties;
pub mod testing;
pub mod text;

pub use component::Component;
pub use flowlink_flow::packed;
pub use flowlink_flow::{Action, Batch, Flow, IpAddr, Origin, Rejected, ip_from_std, ip_to_std};
pub use properties::properties;

/// The version of the WIT contract (`wit/parser.wit`) this SDK builds
/// components against. The host takes any component of the same major.
pub const WIT_VERSION: &str = "1.1.0";

/// The generated bindings of `wit/parser.wit`. Kept in this one module so the
/// rest of the SDK (and every plugin) sees plain Rust types.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "flow-parser-packed",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_flow_parser",
        default_bindings_module: "flowlink_plugin_sdk::bindings",
    });
}

/// What a parser says about itself; the host registers it under `name`.
#[derive(Debug, Clone)]
pub struct ParserInfo {
    pub name: String,
    pub version: String,
    pub formats: Vec<String>,
}

impl ParserInfo {
    pub fn new(name: &str, version: &str, formats: &[&str]) -> Self {
        ParserInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            formats: formats.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// A flow-format parser. One value lives per consumer session inside the
/// component; the host sends it every message of the exporters routed to it,
/// in arrival order, so template state can live in `self`.
pub trait Parser: Sized + 'static {
    fn info() -> ParserInfo;

    /// `config` is the consumer's `parser.properties` as a JSON object
    /// (`{}` when absent). Return a readable error for bad settings: the host
    /// shows it with the consumer's name.
    fn open(config: &str) -> Result<Self, String>;

    /// Decode one message into `out` (empty on entry; the SDK reuses its
    /// buffers from message to message). Return `Err` only when nothing in
    /// the message is usable (what `out` holds is then dropped); report
    /// single bad records with [`Batch::reject`].
    fn parse(&mut self, origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String>;

    /// State worth keeping when the host swaps in a newer build of this
    /// parser (templates). The format is the parser's own business.
    fn save_state(&self) -> Vec<u8> {
        Vec::new()
    }

    fn restore_state(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Exports a [`Parser`] implementation as the component's `parser` interface.
///
/// Only emitted for wasm32: native builds of a plugin crate (tests, clippy,
/// `cargo build --workspace`) cannot link the component's export names.
#[macro_export]
macro_rules! export_parser {
    ($parser:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type FlowlinkComponent = $crate::Component<$parser>;
            $crate::bindings::__export_flow_parser!(
                FlowlinkComponent with_types_in $crate::bindings
            );
        };
    };
}

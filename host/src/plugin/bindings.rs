//! Host-side bindings of `wit/parser.wit` (kept in the SDK crate, `crates/sdk/wit`). The only place `bindgen!` runs.
//! The world bound is `flow-parser`, what every 1.x component exports: the
//! generated loader refuses a component that lacks a bound export, so the
//! optional `packed-input` (1.1.0) is looked up per component instead (loader.rs).

wasmtime::component::bindgen!({
    world: "flow-parser",
    path: "../crates/sdk/wit",
    additional_derives: [PartialEq],
});

pub use flowlink::parser::types::{IpAddr, Message, Origin, Parsed};

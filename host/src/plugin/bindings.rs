//! Host-side bindings of `wit/parser.wit` (kept in the SDK crate, `crates/sdk/wit`). The only place `bindgen!` runs.

wasmtime::component::bindgen!({
    world: "flow-parser",
    path: "../crates/sdk/wit",
    additional_derives: [PartialEq],
});

pub use flowlink::parser::types::{IpAddr, Message, Origin, Parsed};

//! Host-side bindings of `wit/parser.wit`. The only place `bindgen!` runs.

wasmtime::component::bindgen!({
    world: "flow-parser",
    path: "../wit",
    additional_derives: [PartialEq],
});

pub use flowlink::parser::types::{IpAddr, Message, Origin, Parsed};

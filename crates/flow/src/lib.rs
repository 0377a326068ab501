//! The plain flow types shared by the flowlink host and its plugin SDK: what
//! a parser produces ([`Flow`], [`Batch`]), where a message came from
//! ([`Origin`]), and the packed form a record crosses the sandbox in
//! ([`packed`]). No WebAssembly, no I/O: the host links it natively, plugins
//! link it inside their component, and both agree byte for byte.

mod address;
mod flow;
pub mod packed;
mod packed_flows;

pub use address::{ip_from_std, ip_to_std};
pub use flow::{Action, Batch, Flow, IpAddr, Origin, Rejected};
pub use packed_flows::{FlowRef, PackedFlows, PackedRecord};

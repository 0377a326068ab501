//! Flow-record decoders for flowlink's first-party plugins.
//!
//! Plain library code: it runs natively in unit tests, fuzz targets and the
//! host's native-vs-wasm benchmark, and inside the plugin components. One
//! module per protocol version; every decoder appends to an SDK [`Batch`]
//! so a component returns it without copying.
//!
//! [`Batch`]: flowlink_flow::Batch

pub mod error;
pub mod icmp;
pub mod ipfix;
pub mod netflow;
pub mod packet_header;
mod reader;
pub mod sflow;
pub mod template;
pub mod time;

pub use reader::{ByteReader, Truncated};

//! The stages between connectors and the uploader, and what travels between
//! them. Each stage owns a channel in, bounded by count and by bytes; a full
//! queue is counted, never silently absorbed.

mod byte_budget;
mod circuit_breaker;
pub mod message;
mod payload;
mod quarantine;
mod shard_router;
mod worker;

pub use byte_budget::{ByteBudget, BytePermit};
pub use message::{
    Ack, AggregatorInput, NO_EXPORTER, ParsedFlows, RawMessage, ShardKey, WorkerInput, now_ms,
};
pub use payload::Payload;
pub use shard_router::{DatagramBatch, ShardRouter};
pub use worker::{ParserWorkerPool, WorkerSetup, open_session};

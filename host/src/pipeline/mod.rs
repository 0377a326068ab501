//! The stages between connectors and the uploader, and what travels between
//! them. Each stage owns a bounded channel in; a full queue is counted, never
//! silently absorbed.

pub mod message;
mod shard_router;
mod worker;

pub use message::{Ack, AggregatorInput, ParsedFlows, RawMessage, WorkerInput, now_ms};
pub use shard_router::ShardRouter;
pub use worker::{ParserWorkerPool, WorkerSetup, open_session};

//! flowlink: collects flow records, parses them in sandboxed WebAssembly
//! plugins, aggregates them and uploads them to an Illumio PCE.
//!
//! Data flows one way through the modules: [`connector`] → [`pipeline`]
//! (shard router, parser workers running [`plugin`] sessions) →
//! [`aggregator`] → [`uploader`] (with [`spool`] while the PCE is away).
//! [`config`] describes; each owner builds its runtime parts from it.
//! [`daemon`] wires the stages, owns signals and reloads. A consumer with
//! `relay:` goes [`connector`] → [`relay`] → Kafka instead.

pub mod aggregator;
pub mod blocking;
pub mod config;
pub mod connector;
pub mod daemon;
pub mod durable_file;
pub mod kafka_log;
pub mod logging;
pub mod metrics;
pub mod metrics_reporter;
pub mod parser_state;
pub mod pipeline;
pub mod plugin;
pub mod proto;
pub mod relay;
pub mod spool;
pub mod uploader;

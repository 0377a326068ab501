//! sFlow version 5 (sflow.org/sflow_version_5.txt): flow samples become
//! flows, one per sample, carrying the sampling rate; counter samples are
//! counted, not turned into flows.

pub mod packet_header;
pub mod v5;

pub use v5::{SflowDecoder, SflowStats};

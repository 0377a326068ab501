//! sFlow version 5 (sflow.org/sflow_version_5.txt): flow samples become
//! flows, one per sample, carrying the sampling rate; counter samples are
//! counted, not turned into flows.

pub mod v5;

/// The header walker moved to [`crate::packet_header`] (it serves IPFIX
/// packet sections too); re-exported here for existing users such as the
/// sFlow fuzz target.
pub use crate::packet_header;

pub use v5::{SflowDecoder, SflowStats};

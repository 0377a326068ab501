//! sFlow version 5 (sflow.org/sflow_version_5.txt): flow samples become
//! flows, one per sample, carrying the sampling rate; counter samples are
//! counted, not turned into flows.

pub mod v5;

/// The header walker moved to [`crate::packet_header`] (it serves IPFIX
/// packet sections too); re-exported here for existing users such as the
/// sFlow fuzz target.
pub use crate::packet_header;

pub use v5::{SflowDecoder, SflowStats};

/// Why a whole sFlow datagram could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SflowError {
    TooShort {
        len: usize,
    },
    UnsupportedVersion(u32),
    /// The header itself is inconsistent (an unknown agent address type,
    /// more samples than a datagram can hold).
    BadHeader(String),
}

impl std::fmt::Display for SflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SflowError::TooShort { len } => write!(
                f,
                "datagram of {len} bytes is too short for an sFlow header"
            ),
            SflowError::UnsupportedVersion(v) => write!(f, "unsupported sFlow version {v}"),
            SflowError::BadHeader(why) => write!(f, "bad sFlow header: {why}"),
        }
    }
}

impl std::error::Error for SflowError {}

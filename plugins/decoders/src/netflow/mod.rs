//! Cisco NetFlow export formats. One module per version; [`NetflowDecoder`]
//! picks the version from the first two bytes of a datagram (and takes
//! IPFIX, version 10, as FlowLink's netflow parser does).

pub mod v5;
pub mod v7;
pub mod v9;

use std::net::IpAddr;

use flowlink_plugin_sdk::Batch;

use crate::ipfix;
use crate::template::{TemplateConfig, TemplateSession};

/// Why a whole datagram could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    TooShort {
        len: usize,
    },
    UnsupportedVersion(u16),
    /// The header itself is inconsistent (e.g. more records than the version allows).
    BadHeader(String),
}

impl std::fmt::Display for DatagramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatagramError::TooShort { len } => {
                write!(
                    f,
                    "datagram of {len} bytes is too short for a NetFlow header"
                )
            }
            DatagramError::UnsupportedVersion(v) => write!(f, "unsupported NetFlow version {v}"),
            DatagramError::BadHeader(why) => write!(f, "bad NetFlow header: {why}"),
        }
    }
}

impl std::error::Error for DatagramError {}

/// The version in the first two bytes.
pub fn version(payload: &[u8]) -> Result<u16, DatagramError> {
    match payload {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(DatagramError::TooShort { len: payload.len() }),
    }
}

/// Decodes one stateless (v5, v7) NetFlow datagram.
pub fn decode(payload: &[u8], out: &mut Batch) -> Result<(), DatagramError> {
    match version(payload)? {
        5 => v5::decode(payload, out),
        7 => v7::decode(payload, out),
        other => Err(DatagramError::UnsupportedVersion(other)),
    }
}

/// A NetFlow session: v5, v7, and the template-based v9 and IPFIX, whose
/// templates it keeps per exporter and observation domain.
#[derive(Debug, Default)]
pub struct NetflowDecoder {
    pub templates: TemplateSession,
}

impl NetflowDecoder {
    pub fn new(config: TemplateConfig) -> Self {
        NetflowDecoder {
            templates: TemplateSession::new(config),
        }
    }

    /// `now_ms` is the message's arrival time: it ages templates and
    /// waiting data.
    pub fn decode(
        &mut self,
        exporter: IpAddr,
        now_ms: u64,
        payload: &[u8],
        out: &mut Batch,
    ) -> Result<(), DatagramError> {
        self.templates.expire_pending(now_ms, out);
        match version(payload)? {
            5 => v5::decode(payload, out),
            7 => v7::decode(payload, out),
            9 => v9::decode(&mut self.templates, exporter, now_ms, payload, out),
            ipfix::VERSION => ipfix::decode(&mut self.templates, exporter, now_ms, payload, out),
            other => Err(DatagramError::UnsupportedVersion(other)),
        }
    }
}

/// Unix milliseconds of a router-uptime timestamp (`switched`), given the
/// export header's uptime and wall clock. Wrapping arithmetic: uptime is a
/// 32-bit millisecond counter that wraps every 49.7 days, and a flow that
/// started just before the wrap has `switched` > `sys_uptime`.
pub(crate) fn uptime_to_unix_ms(export_unix_ms: u64, sys_uptime: u32, switched: u32) -> u64 {
    let age_ms = sys_uptime.wrapping_sub(switched);
    export_unix_ms.saturating_sub(u64::from(age_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_conversion_survives_wrap() {
        // Export at uptime 1000 ms; the flow began 3000 ms earlier, before the wrap.
        let switched = 1000u32.wrapping_sub(3000);
        assert_eq!(uptime_to_unix_ms(1_000_000, 1000, switched), 997_000);
        assert_eq!(uptime_to_unix_ms(1_000_000, 5000, 4000), 999_000);
    }

    #[test]
    fn rejects_unknown_version_and_short_input() {
        let mut batch = Batch::default();
        assert_eq!(
            decode(&[0, 42, 0, 0], &mut batch),
            Err(DatagramError::UnsupportedVersion(42))
        );
        assert_eq!(
            decode(&[0], &mut batch),
            Err(DatagramError::TooShort { len: 1 })
        );
    }
}

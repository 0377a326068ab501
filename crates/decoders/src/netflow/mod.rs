//! Cisco NetFlow export formats. One module per version; [`NetflowDecoder`]
//! picks the version from the first two bytes of a datagram (and takes
//! IPFIX, version 10, as FlowLink's netflow parser does).

pub mod v5;
pub mod v7;
pub mod v9;

use std::net::IpAddr;

use flowlink_flow::Batch;

use crate::ipfix;
use crate::template::{TemplateConfig, TemplateSession};

pub use crate::error::DatagramError;

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! IPFIX (RFC 7011): a 16-byte message header, then sets — templates (2),
//! options templates (3) and data (≥ 256). Enterprise elements, variable
//! lengths, withdrawals and padding as the RFC describes them.

use std::net::IpAddr;

use flowlink_flow::Batch;

use crate::ByteReader;
use crate::error::DatagramError;
use crate::template::walker::{Dialect, decode_sets};
use crate::template::{ExportClock, Scope, TemplateSession};

pub const HEADER_LEN: usize = 16;
pub const VERSION: u16 = 10;

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub length: u16,
    pub export_time: u32,
    pub sequence: u32,
    pub domain: u32,
}

pub fn parse_header(payload: &[u8]) -> Result<Header, DatagramError> {
    let mut r = ByteReader::new(payload);
    let too_short = |_| DatagramError::TooShort { len: payload.len() };
    let version = r.u16().map_err(too_short)?;
    if version != VERSION {
        return Err(DatagramError::UnsupportedVersion(version));
    }
    Ok(Header {
        length: r.u16().map_err(too_short)?,
        export_time: r.u32().map_err(too_short)?,
        sequence: r.u32().map_err(too_short)?,
        domain: r.u32().map_err(too_short)?,
    })
}

/// Length of the IPFIX message at the start of `stream`, once its header
/// is there: the framing of IPFIX over TCP.
pub fn message_length(stream: &[u8]) -> Option<usize> {
    (stream.len() >= 4).then(|| usize::from(u16::from_be_bytes([stream[2], stream[3]])))
}

pub fn decode(
    session: &mut TemplateSession,
    exporter: IpAddr,
    now_ms: u64,
    payload: &[u8],
    out: &mut Batch,
) -> Result<(), DatagramError> {
    let header = parse_header(payload)?;
    let length = usize::from(header.length);
    if length < HEADER_LEN || length > payload.len() {
        return Err(DatagramError::BadHeader(format!(
            "IPFIX message length {length} does not fit a datagram of {} bytes",
            payload.len()
        )));
    }
    let scope = Scope {
        exporter,
        domain: header.domain,
    };
    let clock = ExportClock::SystemInit {
        system_init_ms: None,
    };
    decode_sets(
        Dialect::Ipfix,
        session,
        scope,
        clock,
        &payload[HEADER_LEN..length],
        HEADER_LEN,
        now_ms,
        out,
    );
    Ok(())
}

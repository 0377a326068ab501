//! NetFlow v9 (RFC 3954): a 20-byte header, then flowsets — templates
//! (id 0), options templates (id 1) and data (id ≥ 256).

use flowlink_flow::Batch;

use super::DatagramError;
use crate::ByteReader;
use crate::template::walker::{Dialect, decode_sets};
use crate::template::{ExportClock, Scope, TemplateSession};

pub const HEADER_LEN: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub count: u16,
    pub sys_uptime: u32,
    pub unix_secs: u32,
    pub sequence: u32,
    pub source_id: u32,
}

pub fn parse_header(payload: &[u8]) -> Result<Header, DatagramError> {
    let mut r = ByteReader::new(payload);
    let too_short = |_| DatagramError::TooShort { len: payload.len() };
    r.u16().map_err(too_short)?;
    Ok(Header {
        count: r.u16().map_err(too_short)?,
        sys_uptime: r.u32().map_err(too_short)?,
        unix_secs: r.u32().map_err(too_short)?,
        sequence: r.u32().map_err(too_short)?,
        source_id: r.u32().map_err(too_short)?,
    })
}

pub fn decode(
    session: &mut TemplateSession,
    exporter: std::net::IpAddr,
    now_ms: u64,
    payload: &[u8],
    out: &mut Batch,
) -> Result<(), DatagramError> {
    let header = parse_header(payload)?;
    let scope = Scope {
        exporter,
        domain: header.source_id,
    };
    // v9 carries whole seconds only: times are as exact as the exporter allows.
    let clock = ExportClock::Uptime {
        export_unix_ms: u64::from(header.unix_secs) * 1000,
        sys_uptime_ms: header.sys_uptime,
    };
    decode_sets(
        Dialect::V9,
        session,
        scope,
        clock,
        &payload[HEADER_LEN..],
        HEADER_LEN,
        now_ms,
        out,
    );
    Ok(())
}

//! IPFIX (RFC 7011): a 16-byte message header, then sets — templates (2),
//! options templates (3) and data (≥ 256). Enterprise elements, variable
//! lengths, withdrawals and padding as the RFC describes them.

use std::net::IpAddr;

use flowlink_plugin_sdk::Batch;

use crate::ByteReader;
use crate::netflow::DatagramError;
use crate::template::sets::Sets;
use crate::template::{DataSet, ExportClock, FieldSpec, Scope, Template, TemplateSession};

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
    let mut index = 0u32;
    for set in Sets::new(&payload[HEADER_LEN..length], HEADER_LEN, "set") {
        let (set_id, body) = match set {
            Ok(set) => set,
            Err(why) => {
                out.reject(index, why);
                break;
            }
        };
        match set_id {
            2 => learn_templates(session, scope, body, false, now_ms, out, index),
            3 => learn_templates(session, scope, body, true, now_ms, out, index),
            0..=255 => {}
            template_id => session.decode(
                &DataSet {
                    scope,
                    template_id,
                    clock,
                    body,
                },
                now_ms,
                out,
                &mut index,
            ),
        }
    }
    Ok(())
}

fn learn_templates(
    session: &mut TemplateSession,
    scope: Scope,
    body: &[u8],
    options: bool,
    now_ms: u64,
    out: &mut Batch,
    index: u32,
) {
    let mut r = ByteReader::new(body);
    // Fewer than a record header left: padding.
    while r.remaining() >= 4 {
        let id = r.u16().expect("checked");
        let count = r.u16().expect("checked");
        if count == 0 {
            // Withdrawal: of all templates when the id is the set id itself.
            if id == 2 || id == 3 {
                session.withdraw_all(scope)
            } else {
                session.withdraw(scope, id)
            }
            continue;
        }
        let scope_count = if options {
            match r.u16() {
                Ok(n) if n > 0 => n,
                _ => {
                    out.reject(index, format!("options template {id} has no scope field"));
                    return;
                }
            }
        } else {
            0
        };
        let mut specs = Vec::with_capacity(usize::from(count).min(512));
        for _ in 0..count {
            let (Ok(raw_id), Ok(length)) = (r.u16(), r.u16()) else {
                out.reject(
                    index,
                    format!("template {id}: {count} fields do not fit in its set"),
                );
                return;
            };
            let enterprise = if raw_id & 0x8000 != 0 {
                match r.u32() {
                    Ok(pen) => pen,
                    Err(_) => {
                        out.reject(index, format!("template {id}: enterprise number cut off"));
                        return;
                    }
                }
            } else {
                0
            };
            specs.push(FieldSpec {
                id: raw_id & 0x7fff,
                enterprise,
                length,
            });
        }
        if id < 256 {
            out.reject(
                index,
                format!("template id {id} is reserved (must be 256 or more)"),
            );
            continue;
        }
        match Template::new(id, scope_count, &specs, now_ms) {
            Ok(template) => session.learn(scope, template, now_ms, out),
            Err(why) => out.reject(index, why),
        }
    }
}

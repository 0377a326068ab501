//! NetFlow v9 (RFC 3954): a 20-byte header, then flowsets — templates
//! (id 0), options templates (id 1) and data (id ≥ 256).

use flowlink_plugin_sdk::Batch;

use super::DatagramError;
use crate::ByteReader;
use crate::template::sets::Sets;
use crate::template::{DataSet, ExportClock, FieldSpec, Scope, Template, TemplateSession};

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
    let mut index = 0u32;
    for set in Sets::new(&payload[HEADER_LEN..], HEADER_LEN, "flowset") {
        let (set_id, body) = match set {
            Ok(set) => set,
            Err(why) => {
                out.reject(index, why);
                break;
            }
        };
        match set_id {
            0 => learn_templates(session, scope, body, now_ms, out, index),
            1 => learn_options_templates(session, scope, body, now_ms, out, index),
            2..=255 => {}
            template_id => {
                session.decode(
                    &DataSet {
                        scope,
                        template_id,
                        clock,
                        body,
                    },
                    now_ms,
                    out,
                    &mut index,
                );
            }
        }
    }
    Ok(())
}

fn read_fields(r: &mut ByteReader<'_>, count: usize) -> Option<Vec<FieldSpec>> {
    let mut specs = Vec::with_capacity(count.min(512));
    for _ in 0..count {
        specs.push(FieldSpec {
            id: r.u16().ok()?,
            enterprise: 0,
            length: r.u16().ok()?,
        });
    }
    Some(specs)
}

fn learn_templates(
    session: &mut TemplateSession,
    scope: Scope,
    body: &[u8],
    now_ms: u64,
    out: &mut Batch,
    index: u32,
) {
    let mut r = ByteReader::new(body);
    while r.remaining() >= 4 {
        let id = r.u16().expect("checked");
        let count = usize::from(r.u16().expect("checked"));
        let Some(specs) = read_fields(&mut r, count) else {
            out.reject(
                index,
                format!("template {id}: {count} fields do not fit in its flowset"),
            );
            return;
        };
        match Template::new(id, 0, &specs, now_ms) {
            Ok(template) if id >= 256 => session.learn(scope, template, now_ms, out),
            Ok(_) => out.reject(
                index,
                format!("template id {id} is reserved (must be 256 or more)"),
            ),
            Err(why) => out.reject(index, why),
        }
    }
}

fn learn_options_templates(
    session: &mut TemplateSession,
    scope: Scope,
    body: &[u8],
    now_ms: u64,
    out: &mut Batch,
    index: u32,
) {
    let mut r = ByteReader::new(body);
    while r.remaining() >= 6 {
        let id = r.u16().expect("checked");
        let scope_len = usize::from(r.u16().expect("checked"));
        let options_len = usize::from(r.u16().expect("checked"));
        if id < 256 {
            // Padding (zeros) or garbage: either way nothing more to learn.
            return;
        }
        let (scope_count, options_count) = (scope_len / 4, options_len / 4);
        let Some(specs) = read_fields(&mut r, scope_count + options_count) else {
            out.reject(
                index,
                format!("options template {id}: fields do not fit in its flowset"),
            );
            return;
        };
        match Template::new(id, scope_count.max(1) as u16, &specs, now_ms) {
            Ok(template) => session.learn(scope, template, now_ms, out),
            Err(why) => out.reject(index, why),
        }
    }
}

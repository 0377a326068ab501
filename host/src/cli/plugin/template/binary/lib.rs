//! `{{name}}`: a flowlink parser for a made-up binary export: the magic
//! `FLX1`, then 29-byte records, big-endian: source IPv4 (4), destination
//! IPv4 (4), source port (2), destination port (2), protocol (1), packets (4),
//! bytes (8), start in Unix seconds (4).

use flowlink_plugin_sdk::{Batch, Flow, IpAddr, Origin, Parser, ParserInfo};

const MAGIC: &[u8; 4] = b"FLX1";
const RECORD: usize = 29;

/// `parser.properties`: none yet, so any key is refused by name.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

pub struct {{type_name}};

impl Parser for {{type_name}} {
    fn info() -> ParserInfo {
        ParserInfo::new("{{name}}", env!("CARGO_PKG_VERSION"), &["{{name}}"])
    }

    fn open(config: &str) -> Result<Self, String> {
        let Settings {} = flowlink_plugin_sdk::properties(config)?;
        Ok({{type_name}})
    }

    fn parse(&mut self, _origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        let Some(body) = payload.strip_prefix(MAGIC) else {
            return Err("not an FLX1 message (bad magic)".into());
        };
        for (index, r) in body.chunks(RECORD).enumerate() {
            if r.len() < RECORD {
                out.reject(index as u32, format!("record cut short: {} of {RECORD} bytes", r.len()));
                continue;
            }
            let u32_at = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
            let start_ms = u64::from(u32_at(25)) * 1000; // at most 2^32 s: no overflow
            out.flows.push(Flow {
                src: IpAddr::V4(u32_at(0)),
                dst: IpAddr::V4(u32_at(4)),
                src_port: u16::from_be_bytes([r[8], r[9]]),
                dst_port: u16::from_be_bytes([r[10], r[11]]),
                protocol: r[12],
                packets: u64::from(u32_at(13)),
                bytes: (u64::from(u32_at(17)) << 32) | u64::from(u32_at(21)),
                start_ms,
                end_ms: start_ms,
                icmp_unknown: true, // the format has no ICMP type or code
                ..Flow::default()
            });
        }
        Ok(())
    }
}

flowlink_plugin_sdk::export_parser!({{type_name}});

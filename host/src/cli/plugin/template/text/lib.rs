//! `{{name}}`: a flowlink parser for a pipe-separated firewall log, one record
//! a line: `epoch_seconds|action|protocol|src|src_port|dst|dst_port|packets|bytes`.

use flowlink_plugin_sdk::text::{lines, parse_action, parse_count, parse_ip, parse_port, parse_protocol};
use flowlink_plugin_sdk::{Batch, Flow, Origin, Parser, ParserInfo};

/// `parser.properties`; an unknown key is refused by name.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    separator: Option<char>,
}

/// The session: the field separator (`|` unless `separator` says otherwise).
pub struct {{type_name}}(char);

impl Parser for {{type_name}} {
    fn info() -> ParserInfo {
        ParserInfo::new("{{name}}", env!("CARGO_PKG_VERSION"), &["{{name}}"])
    }

    fn open(config: &str) -> Result<Self, String> {
        let settings: Settings = flowlink_plugin_sdk::properties(config)?;
        Ok({{type_name}}(settings.separator.unwrap_or('|')))
    }

    fn parse(&mut self, _origin: &Origin, payload: &[u8], out: &mut Batch) -> Result<(), String> {
        for (index, line) in lines(payload) {
            match record(&String::from_utf8_lossy(line), self.0) {
                Ok(flow) => out.flows.push(flow),
                Err(reason) => out.reject(index, reason),
            }
        }
        Ok(())
    }
}

fn record(line: &str, separator: char) -> Result<Flow, String> {
    let fields: Vec<&str> = line.split(separator).collect();
    let [time, action, protocol, src, src_port, dst, dst_port, packets, bytes] = fields[..] else {
        return Err(format!("{} fields, expected 9", fields.len()));
    };
    let ms = parse_count(time)?.checked_mul(1000).ok_or("time out of range")?;
    Ok(Flow {
        src: parse_ip(src)?,
        dst: parse_ip(dst)?,
        src_port: parse_port(src_port)?,
        dst_port: parse_port(dst_port)?,
        protocol: parse_protocol(protocol)?,
        action: parse_action(action)?,
        packets: parse_count(packets)?,
        bytes: parse_count(bytes)?,
        start_ms: ms,
        end_ms: ms,
        icmp_unknown: true, // the format has no ICMP type or code
        ..Flow::default()
    })
}

flowlink_plugin_sdk::export_parser!({{type_name}});

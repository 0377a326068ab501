//! The canonical fields a text record can fill, and how a record's values
//! become a [`Flow`].

use flowlink_plugin_sdk::text::{
    parse_action, parse_count, parse_ip, parse_port, parse_protocol, shorten,
};
use flowlink_plugin_sdk::{Flow, IpAddr};

use crate::timestamp::TimestampFormat;

/// A field of the flow record, as named in `parser.properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Timestamp,
    EndTimestamp,
    Action,
    TcpFlags,
    IcmpType,
    IcmpCode,
}

pub const FIELD_COUNT: usize = 13;

impl Field {
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::SrcIp,
        Field::DstIp,
        Field::SrcPort,
        Field::DstPort,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Timestamp,
        Field::EndTimestamp,
        Field::Action,
        Field::TcpFlags,
        Field::IcmpType,
        Field::IcmpCode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::SrcIp => "src_ip",
            Field::DstIp => "dst_ip",
            Field::SrcPort => "src_port",
            Field::DstPort => "dst_port",
            Field::Protocol => "protocol",
            Field::Packets => "packets",
            Field::Bytes => "bytes",
            Field::Timestamp => "timestamp",
            Field::EndTimestamp => "end_timestamp",
            Field::Action => "action",
            Field::TcpFlags => "tcp_flags",
            Field::IcmpType => "icmp_type",
            Field::IcmpCode => "icmp_code",
        }
    }

    /// The canonical name, or an alias FlowLink configs use (`proto`).
    pub fn from_name(name: &str) -> Option<Field> {
        if name == "proto" {
            return Some(Field::Protocol);
        }
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One value per field, borrowed from the record where possible.
pub type Values<'a> = [Option<std::borrow::Cow<'a, str>>; FIELD_COUNT];

pub fn empty_values<'a>() -> Values<'a> {
    Default::default()
}

/// Turns a record's values into a flow: defaults fill the gaps, every
/// conversion error names the field and, where known, the record's key.
pub struct FlowBuilder {
    pub defaults: [Option<String>; FIELD_COUNT],
    pub timestamp: TimestampFormat,
    /// Where each field came from in the record (key, column, group), for errors.
    pub sources: [Option<String>; FIELD_COUNT],
}

impl FlowBuilder {
    pub fn build(&self, values: &Values<'_>, received_ms: u64) -> Result<Flow, String> {
        let get = |field: Field| -> Option<&str> {
            values[field.index()]
                .as_deref()
                .filter(|v| !v.trim().is_empty() && v.trim() != "-")
                .or(self.defaults[field.index()].as_deref())
        };
        let err = |field: Field, e: String| -> String {
            match &self.sources[field.index()] {
                Some(source) => format!("field {} ({source}): {e}", field.name()),
                None => format!("field {}: {e}", field.name()),
            }
        };
        let required = |field: Field| -> Result<&str, String> {
            get(field).ok_or_else(|| err(field, "missing".to_owned()))
        };
        let convert = |field: Field, parse: fn(&str) -> Result<u64, String>| {
            get(field).map(parse).transpose().map_err(|e| err(field, e))
        };

        let src = parse_ip(required(Field::SrcIp)?).map_err(|e| err(Field::SrcIp, e))?;
        let dst = parse_ip(required(Field::DstIp)?).map_err(|e| err(Field::DstIp, e))?;
        if matches!(src, IpAddr::V4(_)) != matches!(dst, IpAddr::V4(_)) {
            return Err("src_ip and dst_ip are of different address families".to_owned());
        }
        let protocol =
            parse_protocol(required(Field::Protocol)?).map_err(|e| err(Field::Protocol, e))?;
        let port = |field: Field| -> Result<u16, String> {
            get(field)
                .map(parse_port)
                .transpose()
                .map_err(|e| err(field, e))
                .map(Option::unwrap_or_default)
        };
        let small = |field: Field| -> Result<Option<u8>, String> {
            get(field)
                .map(|v| {
                    let v = v.trim();
                    let parsed = match v.strip_prefix("0x") {
                        Some(hex) => u8::from_str_radix(hex, 16),
                        None => v.parse::<u8>(),
                    };
                    parsed.map_err(|_| format!("{:?} is not a number 0-255", shorten(v)))
                })
                .transpose()
                .map_err(|e| err(field, e))
        };
        let time = |field: Field| -> Result<u64, String> {
            get(field)
                .map(|v| self.timestamp.parse(v, received_ms))
                .transpose()
                .map_err(|e| err(field, e))
                .map(Option::unwrap_or_default)
        };

        let start_ms = time(Field::Timestamp)?;
        let end_ms = match time(Field::EndTimestamp)? {
            0 => start_ms,
            end => end,
        };
        let icmp = matches!(protocol, 1 | 58);
        let icmp_type = small(Field::IcmpType)?;
        let icmp_code = small(Field::IcmpCode)?;
        Ok(Flow {
            src,
            dst,
            src_port: port(Field::SrcPort)?,
            dst_port: port(Field::DstPort)?,
            protocol,
            packets: convert(Field::Packets, parse_count)?.unwrap_or(0),
            bytes: convert(Field::Bytes, parse_count)?.unwrap_or(0),
            start_ms,
            end_ms,
            sampling_interval: 1,
            tcp_flags: small(Field::TcpFlags)?.unwrap_or(0),
            icmp_type: if icmp { icmp_type.unwrap_or(0) } else { 0 },
            icmp_code: if icmp { icmp_code.unwrap_or(0) } else { 0 },
            icmp_unknown: icmp && icmp_type.is_none(),
            action: get(Field::Action)
                .map(parse_action)
                .transpose()
                .map_err(|e| err(Field::Action, e))?
                .unwrap_or_default(),
        })
    }
}

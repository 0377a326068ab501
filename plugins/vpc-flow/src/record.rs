//! One VPC flow log line to one [`Flow`].

use flowlink_plugin_sdk::text::{parse_action, parse_count, parse_ip, parse_port, shorten};
use flowlink_plugin_sdk::{Flow, IpAddr};

use crate::format::Layout;

/// Which addresses a record is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// `srcaddr`/`dstaddr`: the network interface's view (AWS's default).
    Interface,
    /// `pkt-srcaddr`/`pkt-dstaddr`: the packet's original addresses, which
    /// differ behind NAT gateways and for traffic through middleboxes.
    Packet,
}

/// What a line was.
pub enum Record {
    Flow(Flow),
    /// NODATA or SKIPDATA: no traffic, or records AWS could not capture.
    NoData,
    SkipData,
}

/// `-` is AWS's "no value".
fn field<'a>(cells: &[&'a str], column: Option<usize>) -> Option<&'a str> {
    column
        .and_then(|c| cells.get(c).copied())
        .filter(|v| *v != "-")
}

pub fn parse_record(line: &str, layout: &Layout, addresses: Addresses) -> Result<Record, String> {
    let cells: Vec<&str> = line.split_ascii_whitespace().collect();
    if cells.len() != layout.columns {
        return Err(format!(
            "{} fields where the format has {}",
            cells.len(),
            layout.columns
        ));
    }
    match field(&cells, layout.log_status) {
        Some("NODATA") => return Ok(Record::NoData),
        Some("SKIPDATA") => return Ok(Record::SkipData),
        _ => {}
    }
    let named = |name: &str, e: String| format!("{name}: {e}");
    let (src_column, dst_column, src_name, dst_name) = match addresses {
        Addresses::Packet if layout.pkt_srcaddr.is_some() => (
            layout.pkt_srcaddr,
            layout.pkt_dstaddr,
            "pkt-srcaddr",
            "pkt-dstaddr",
        ),
        _ if layout.srcaddr.is_some() => (layout.srcaddr, layout.dstaddr, "srcaddr", "dstaddr"),
        _ => (
            layout.pkt_srcaddr,
            layout.pkt_dstaddr,
            "pkt-srcaddr",
            "pkt-dstaddr",
        ),
    };
    let address = |column, name: &str| -> Result<IpAddr, String> {
        let text = field(&cells, column).ok_or_else(|| format!("{name}: missing"))?;
        parse_ip(text).map_err(|e| named(name, e))
    };
    let src = address(src_column, src_name)?;
    let dst = address(dst_column, dst_name)?;
    let protocol = match field(&cells, layout.protocol) {
        Some(text) => text
            .parse::<u8>()
            .map_err(|_| format!("protocol: {:?} is not a protocol number", shorten(text)))?,
        None => return Err("protocol: missing".to_owned()),
    };
    let port = |column, name: &str| -> Result<u16, String> {
        field(&cells, column)
            .map_or(Ok(0), parse_port)
            .map_err(|e| named(name, e))
    };
    let count = |column, name: &str| -> Result<u64, String> {
        field(&cells, column)
            .map_or(Ok(0), parse_count)
            .map_err(|e| named(name, e))
    };
    let seconds = |column, name: &str| -> Result<u64, String> {
        Ok(count(column, name)?.saturating_mul(1000))
    };
    let tcp_flags = match field(&cells, layout.tcp_flags) {
        // The OR of the flags seen in the capture window (SYN 2, FIN 1, RST 4, SYN-ACK 18).
        Some(text) => text
            .parse::<u8>()
            .map_err(|_| format!("tcp-flags: {:?} is not a number 0-255", shorten(text)))?,
        None => 0,
    };
    let icmp = matches!(protocol, 1 | 58);
    Ok(Record::Flow(Flow {
        src,
        dst,
        src_port: port(layout.srcport, "srcport")?,
        dst_port: port(layout.dstport, "dstport")?,
        protocol,
        packets: count(layout.packets, "packets")?,
        bytes: count(layout.bytes, "bytes")?,
        start_ms: seconds(layout.start, "start")?,
        end_ms: seconds(layout.end, "end")?,
        sampling_interval: 1,
        tcp_flags,
        icmp_type: 0,
        icmp_code: 0,
        // VPC records carry no ICMP type or code.
        icmp_unknown: icmp,
        action: field(&cells, layout.action)
            .map(parse_action)
            .transpose()
            .map_err(|e| named("action", e))?
            .unwrap_or_default(),
    }))
}

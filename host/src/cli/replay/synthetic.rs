//! Generated export streams for load tests: NetFlow v9, IPFIX or sFlow v5
//! datagrams whose records are all different traffic keys (a new client
//! address per record), so a collector's aggregation sees the unique-key
//! case FlowLink is sized for. Every record counts one packet of 1,000
//! bytes, so a peer's byte or packet totals give its record count.

use std::net::Ipv4Addr;

/// The export format to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    /// NetFlow v9 (RFC 3954), template 256, IPv4 5-tuple, counters and uptimes.
    V9,
    /// IPFIX (RFC 7011), the same fields as `v9`, times in milliseconds.
    Ipfix,
    /// sFlow v5 flow samples with a raw Ethernet/IPv4/TCP header, rate 1.
    Sflow,
}

impl Generated {
    /// Records per datagram unless told: what fits in a 1,500-byte MTU.
    pub fn default_per_datagram(self) -> u32 {
        match self {
            Generated::V9 | Generated::Ipfix => 30,
            Generated::Sflow => 10,
        }
    }
}

/// Bytes and packets of every generated record.
pub const RECORD_BYTES: u32 = 1000;

/// Record `index`'s key: client 10.0.0.0 + index, one of 16 servers and
/// services, an ephemeral client port.
fn key(index: u32) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    const SERVICES: [u16; 16] = [
        443, 80, 22, 53, 3306, 5432, 8080, 8443, 25, 110, 143, 389, 636, 993, 995, 6379,
    ];
    let src = Ipv4Addr::from(0x0a00_0000u32.wrapping_add(index));
    let dst = Ipv4Addr::new(192, 168, 0, 1 + (index % 16) as u8);
    let src_port = 32768 + (index % 28000) as u16;
    (src, dst, src_port, SERVICES[(index % 16) as usize])
}

/// `keys` records, `per_datagram` to a datagram; the first datagram also
/// carries the template (v9, IPFIX), so every pass of the stream teaches it.
pub fn datagrams(format: Generated, keys: u32, per_datagram: u32) -> Vec<Vec<u8>> {
    let per_datagram = per_datagram.max(1);
    let mut out = Vec::new();
    let mut first = 0;
    let mut sequence = 0u32;
    while first < keys {
        let count = per_datagram.min(keys - first);
        let records = first..first + count;
        out.push(match format {
            Generated::V9 => v9(records, out.len() as u32, first == 0),
            Generated::Ipfix => ipfix(records, sequence, first == 0),
            Generated::Sflow => sflow(records, out.len() as u32),
        });
        sequence = sequence.wrapping_add(count);
        first += count;
    }
    out
}

/// Per datagram: its sequence number and what one pass of the stream
/// advances it by (v9 counts datagrams, IPFIX data records), for replay's
/// rewrite; sFlow is sent as generated.
pub fn sequence_plan(
    format: Generated,
    datagrams: &[Vec<u8>],
    keys: u32,
) -> Vec<Option<(u32, u32)>> {
    let (at, step) = match format {
        Generated::V9 => (12, datagrams.len() as u32),
        Generated::Ipfix => (8, keys),
        Generated::Sflow => return vec![None; datagrams.len()],
    };
    datagrams
        .iter()
        .map(|d| {
            Some((
                u32::from_be_bytes(d[at..at + 4].try_into().expect("4 bytes")),
                step,
            ))
        })
        .collect()
}

/// (element id, length) of the fields both NetFlow v9 and IPFIX use:
/// addresses, ports, protocol, TCP flags, packets, octets.
const FIELDS: [(u16, u16); 8] = [
    (8, 4),  // source IPv4 address
    (12, 4), // destination IPv4 address
    (7, 2),  // source port
    (11, 2), // destination port
    (4, 1),  // protocol
    (6, 1),  // TCP flags
    (2, 4),  // packets
    (1, 4),  // octets
];
/// Then the times: v9 as uptimes (the header carries the uptime); IPFIX
/// as flowStart/EndMilliseconds (its header has no uptime to count from).
const V9_TIMES: [(u16, u16); 2] = [(22, 4), (21, 4)];
const IPFIX_TIMES: [(u16, u16); 2] = [(152, 8), (153, 8)];
const TEMPLATE_ID: u16 = 256;
/// The exporter's uptime in the header; records end just before it.
const UPTIME_MS: u32 = 3_600_000;

/// Records per datagram at most: the counts and lengths are 16-bit, and a
/// datagram stays under 64 KiB.
pub const MAX_PER_DATAGRAM: u32 = 1000;

fn put_record(out: &mut Vec<u8>, index: u32, dialect: Dialect) {
    let (src, dst, src_port, dst_port) = key(index);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.push(6);
    out.push(0x1b); // FIN PSH ACK SYN: a whole connection
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&RECORD_BYTES.to_be_bytes());
    match dialect {
        Dialect::V9 => {
            out.extend_from_slice(&(UPTIME_MS - 2000).to_be_bytes());
            out.extend_from_slice(&(UPTIME_MS - 1000).to_be_bytes());
        }
        Dialect::Ipfix => {
            let export_ms = u64::from(EXPORT_SECS) * 1000;
            out.extend_from_slice(&(export_ms - 2000).to_be_bytes());
            out.extend_from_slice(&(export_ms - 1000).to_be_bytes());
        }
    }
}

#[derive(Clone, Copy)]
enum Dialect {
    V9,
    Ipfix,
}

fn put_template(out: &mut Vec<u8>, dialect: Dialect) {
    let (set_id, times) = match dialect {
        Dialect::V9 => (0u16, V9_TIMES),
        Dialect::Ipfix => (2, IPFIX_TIMES),
    };
    let fields = FIELDS.iter().chain(times.iter());
    let count = FIELDS.len() + times.len();
    let len = 4 + 4 + 4 * count;
    out.extend_from_slice(&set_id.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
    out.extend_from_slice(&(count as u16).to_be_bytes());
    for &(id, length) in fields {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
    }
}

/// A data set of `records`, padded to 4 bytes.
fn put_data_set(out: &mut Vec<u8>, records: std::ops::Range<u32>, dialect: Dialect) {
    let start = out.len();
    out.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for index in records {
        put_record(out, index, dialect);
    }
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Export time: replay rewrites it on every send.
const EXPORT_SECS: u32 = 1_700_000_000;

fn v9(records: std::ops::Range<u32>, sequence: u32, with_template: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(1500);
    // RFC 3954: the count is of records, templates included.
    let count = records.len() as u16 + u16::from(with_template);
    out.extend_from_slice(&9u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&UPTIME_MS.to_be_bytes());
    out.extend_from_slice(&EXPORT_SECS.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // source id
    if with_template {
        put_template(&mut out, Dialect::V9);
    }
    put_data_set(&mut out, records, Dialect::V9);
    out
}

fn ipfix(records: std::ops::Range<u32>, sequence: u32, with_template: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(1500);
    out.extend_from_slice(&10u16.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // length, below
    out.extend_from_slice(&EXPORT_SECS.to_be_bytes());
    // RFC 7011: data records sent before this message.
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // observation domain
    if with_template {
        put_template(&mut out, Dialect::Ipfix);
    }
    put_data_set(&mut out, records, Dialect::Ipfix);
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn sflow(records: std::ops::Range<u32>, sequence: u32) -> Vec<u8> {
    let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
    let mut out = Vec::with_capacity(1500);
    put(&mut out, 5); // version
    put(&mut out, 1); // agent address: IPv4
    out.extend_from_slice(&[192, 0, 2, 1]);
    put(&mut out, 0); // sub-agent
    put(&mut out, sequence);
    put(&mut out, UPTIME_MS);
    put(&mut out, records.len() as u32);
    for index in records {
        let header = packet_header(index);
        let padded = header.len().next_multiple_of(4);
        put(&mut out, 1); // flow sample
        put(&mut out, 32 + 8 + 16 + padded as u32);
        put(&mut out, index); // sample sequence
        put(&mut out, 1); // source id: ifIndex 1
        put(&mut out, 1); // sampling rate
        put(&mut out, index); // sample pool
        put(&mut out, 0); // drops
        put(&mut out, 1); // input interface
        put(&mut out, 2); // output interface
        put(&mut out, 1); // one flow record
        put(&mut out, 1); // raw packet header
        put(&mut out, 16 + padded as u32);
        put(&mut out, 1); // Ethernet
        put(&mut out, RECORD_BYTES + 14 + 4); // frame length with FCS
        put(&mut out, 4); // stripped (the FCS)
        put(&mut out, header.len() as u32);
        out.extend_from_slice(&header);
        out.resize(out.len() + padded - header.len(), 0);
    }
    out
}

/// Ethernet, IPv4 (total length [`RECORD_BYTES`]) and TCP headers.
fn packet_header(index: u32) -> Vec<u8> {
    let (src, dst, src_port, dst_port) = key(index);
    let mut h = Vec::with_capacity(54);
    h.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    h.extend_from_slice(&[0x45, 0]);
    h.extend_from_slice(&(RECORD_BYTES as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&dst_port.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_advances_v9_by_its_datagrams_and_ipfix_by_its_records() {
        let v9 = datagrams(Generated::V9, 95, 30);
        let plan = sequence_plan(Generated::V9, &v9, 95);
        assert_eq!(plan[3], Some((3, 4)));
        let ipfix = datagrams(Generated::Ipfix, 95, 30);
        let plan = sequence_plan(Generated::Ipfix, &ipfix, 95);
        assert_eq!(plan[3], Some((90, 95)));
    }

    #[test]
    fn every_record_is_its_own_key_and_the_last_datagram_takes_the_rest() {
        let keys: std::collections::HashSet<_> = (0..100_000).map(key).collect();
        assert_eq!(keys.len(), 100_000);
        for format in [Generated::V9, Generated::Ipfix, Generated::Sflow] {
            let per = format.default_per_datagram();
            let d = datagrams(format, per * 3 + 5, per);
            assert_eq!(d.len(), 4, "{format:?}");
            assert!(d.iter().all(|d| d.len() <= 1500), "{format:?}");
        }
    }
}

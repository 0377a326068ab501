//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records. v7
//! shares the header and the first 40 bytes of a record, so it reuses
//! [`decode_fixed`] with its own [`Layout`].

use flowlink_flow::{Action, Batch, Flow, IpAddr};

use super::DatagramError;
use crate::ByteReader;
use crate::time::uptime_to_unix_ms;

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco's limit; a larger count means the header is corrupt.
pub const MAX_RECORDS: u16 = 30;

/// The parts of the header that records need.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub count: u16,
    pub sys_uptime: u32,
    pub export_unix_ms: u64,
    pub sequence: u32,
    /// 1-in-N; 1 when the exporter does not sample or leaves it at 0.
    pub sampling_interval: u32,
}

/// Record size and count limit of a fixed-record version.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub name: &'static str,
    pub record_len: usize,
    pub max_records: u16,
}

pub const V5: Layout = Layout {
    name: "v5",
    record_len: RECORD_LEN,
    max_records: MAX_RECORDS,
};

pub fn parse_header(payload: &[u8], layout: Layout) -> Result<Header, DatagramError> {
    let mut r = ByteReader::new(payload);
    let too_short = |_| DatagramError::TooShort { len: payload.len() };
    let _version = r.u16().map_err(too_short)?;
    let count = r.u16().map_err(too_short)?;
    let sys_uptime = r.u32().map_err(too_short)?;
    let unix_secs = r.u32().map_err(too_short)?;
    let unix_nsecs = r.u32().map_err(too_short)?;
    let sequence = r.u32().map_err(too_short)?;
    let _engine = r.u16().map_err(too_short)?;
    let sampling = r.u16().map_err(too_short)?;
    if count > layout.max_records {
        return Err(DatagramError::BadHeader(format!(
            "{} header claims {count} records, the format allows at most {}",
            layout.name, layout.max_records
        )));
    }
    // Top two bits are the sampling mode; the interval is the low 14.
    let interval = u32::from(sampling & 0x3fff);
    Ok(Header {
        count,
        sys_uptime,
        // Rounded, not truncated: tshark and nfdump print the nearest millisecond.
        export_unix_ms: u64::from(unix_secs) * 1000 + (u64::from(unix_nsecs) + 500_000) / 1_000_000,
        sequence,
        sampling_interval: interval.max(1),
    })
}

/// Decodes a v5 datagram. Records the datagram is too short for are
/// rejected one by one, so a truncated datagram still yields what it holds.
pub fn decode(payload: &[u8], out: &mut Batch) -> Result<(), DatagramError> {
    decode_fixed(payload, V5, out)
}

/// Decodes a v5-style datagram of `layout`.
pub fn decode_fixed(payload: &[u8], layout: Layout, out: &mut Batch) -> Result<(), DatagramError> {
    let header = parse_header(payload, layout)?;
    let body = &payload[HEADER_LEN..];
    out.flows.reserve(usize::from(header.count));
    for index in 0..usize::from(header.count) {
        let start = index * layout.record_len;
        match body.get(start..start + layout.record_len) {
            Some(record) => out.flows.push(decode_record(&header, record)),
            None => out.reject(
                index as u32,
                format!(
                    "{} record {index} truncated: header says {} records ({} bytes), datagram has {}",
                    layout.name,
                    header.count,
                    HEADER_LEN + usize::from(header.count) * layout.record_len,
                    payload.len()
                ),
            ),
        }
    }
    Ok(())
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// `record` is at least 48 bytes, so fixed offsets cannot fail.
fn decode_record(header: &Header, record: &[u8]) -> Flow {
    let protocol = record[38];
    let src_port = be16(record, 32);
    let dst_port = be16(record, 34);
    let first = be32(record, 24);
    let last = be32(record, 28);
    let (icmp_type, icmp_code) = match protocol {
        1 | 58 => crate::icmp::icmp_from_ports(src_port, dst_port),
        _ => (0, 0),
    };
    Flow {
        src: IpAddr::V4(be32(record, 0)),
        dst: IpAddr::V4(be32(record, 4)),
        src_port,
        dst_port,
        protocol,
        packets: u64::from(be32(record, 16)),
        bytes: u64::from(be32(record, 20)),
        start_ms: uptime_to_unix_ms(header.export_unix_ms, header.sys_uptime, first),
        end_ms: uptime_to_unix_ms(header.export_unix_ms, header.sys_uptime, last),
        sampling_interval: header.sampling_interval,
        tcp_flags: record[37],
        icmp_type,
        icmp_code,
        icmp_unknown: false,
        action: Action::Unknown,
    }
}

/// A well-formed v5 datagram with `records` distinct TCP records (source
/// 10.0.0.1+i, destination 192.168.0.1:443), for tests and benchmarks.
pub fn synthetic_datagram(records: u16, sampling: u16) -> Vec<u8> {
    let mut d = Vec::with_capacity(HEADER_LEN + usize::from(records) * RECORD_LEN);
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&records.to_be_bytes());
    d.extend_from_slice(&100_000u32.to_be_bytes()); // uptime
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    d.extend_from_slice(&500_000_000u32.to_be_bytes()); // +500 ms
    d.extend_from_slice(&7u32.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(&sampling.to_be_bytes());
    for i in 0..records {
        let i32 = u32::from(i);
        d.extend_from_slice(&(0x0a00_0001 + i32).to_be_bytes());
        d.extend_from_slice(&0xc0a8_0001u32.to_be_bytes());
        d.extend_from_slice(&[0; 8]); // nexthop, input, output
        d.extend_from_slice(&(10 + i32).to_be_bytes());
        d.extend_from_slice(&(1000 + i32).to_be_bytes());
        d.extend_from_slice(&90_000u32.to_be_bytes());
        d.extend_from_slice(&99_000u32.to_be_bytes());
        d.extend_from_slice(&(40000 + i).to_be_bytes());
        d.extend_from_slice(&443u16.to_be_bytes());
        d.extend_from_slice(&[0, 0x1b, 6, 0]);
        d.extend_from_slice(&[0; 8]);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_field() {
        let mut batch = Batch::default();
        decode(&synthetic_datagram(2, 0), &mut batch).unwrap();
        assert!(batch.rejected.is_empty());
        assert_eq!(batch.flows.len(), 2);
        let f = &batch.flows[1];
        assert_eq!(f.src, IpAddr::V4(0x0a00_0002));
        assert_eq!(f.dst, IpAddr::V4(0xc0a8_0001));
        assert_eq!((f.src_port, f.dst_port, f.protocol), (40001, 443, 6));
        assert_eq!((f.packets, f.bytes), (11, 1001));
        // export at 1_700_000_000.5 s, uptime 100 s: first at 90 s, last at 99 s.
        assert_eq!(f.start_ms, 1_700_000_000_500 - 10_000);
        assert_eq!(f.end_ms, 1_700_000_000_500 - 1_000);
        assert_eq!(f.tcp_flags, 0x1b);
        assert_eq!(f.sampling_interval, 1);
    }

    #[test]
    fn sampling_interval_ignores_mode_bits() {
        let mut batch = Batch::default();
        decode(&synthetic_datagram(1, 0x4000 | 100), &mut batch).unwrap();
        assert_eq!(batch.flows[0].sampling_interval, 100);
    }

    #[test]
    fn truncated_datagram_keeps_complete_records_and_rejects_the_rest() {
        let mut d = synthetic_datagram(3, 0);
        d.truncate(HEADER_LEN + RECORD_LEN + 10);
        let mut batch = Batch::default();
        decode(&d, &mut batch).unwrap();
        assert_eq!(batch.flows.len(), 1);
        assert_eq!(
            batch.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(
            batch.rejected[0].reason.contains("truncated"),
            "{}",
            batch.rejected[0].reason
        );
    }

    #[test]
    fn absurd_count_is_a_header_error() {
        let mut d = synthetic_datagram(1, 0);
        d[2..4].copy_from_slice(&5000u16.to_be_bytes());
        let err = decode(&d, &mut Batch::default()).unwrap_err();
        assert!(err.to_string().contains("5000 records"), "{err}");
    }

    #[test]
    fn short_header_is_rejected() {
        let d = synthetic_datagram(0, 0);
        let err = decode(&d[..20], &mut Batch::default()).unwrap_err();
        assert_eq!(err, DatagramError::TooShort { len: 20 });
    }
}

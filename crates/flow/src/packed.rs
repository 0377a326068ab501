//! The packed flow record of `wit/parser.wit` (`parsed.flows`): 80 bytes,
//! integers little-endian, addresses in network order. The SDK packs in the
//! component; the host unpacks with the same code.

use crate::{Action, Flow, IpAddr};

/// Bytes per packed record.
pub const PACKED_FLOW_LEN: usize = 80;

/// Why a packed record is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpackError {
    Family(u8),
    Action(u8),
}

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackError::Family(v) => write!(f, "address family byte {v} is not 4 or 6"),
            UnpackError::Action(v) => write!(f, "action byte {v} is not 0, 1 or 2"),
        }
    }
}

impl std::error::Error for UnpackError {}

#[inline]
fn put_ip(out: &mut [u8], ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.to_be_bytes());
            4
        }
        IpAddr::V6((hi, lo)) => {
            out[..8].copy_from_slice(&hi.to_be_bytes());
            out[8..16].copy_from_slice(&lo.to_be_bytes());
            6
        }
    }
}

#[inline]
fn get_ip(family: u8, bytes: &[u8]) -> Result<IpAddr, UnpackError> {
    let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    match family {
        4 => Ok(IpAddr::V4(u32::from_be_bytes(
            bytes[..4].try_into().expect("4 bytes"),
        ))),
        6 => Ok(IpAddr::V6((u64_at(0), u64_at(8)))),
        other => Err(UnpackError::Family(other)),
    }
}

/// Appends `flow` to `out` as one packed record.
#[inline]
pub fn pack(flow: &Flow, out: &mut Vec<u8>) {
    let mut r = [0u8; PACKED_FLOW_LEN];
    r[0] = put_ip(&mut r[16..32], flow.src);
    r[1] = put_ip(&mut r[32..48], flow.dst);
    r[2] = flow.protocol;
    r[3] = flow.tcp_flags;
    r[4] = flow.icmp_type;
    r[5] = flow.icmp_code;
    r[6] = match flow.action {
        Action::Unknown => 0,
        Action::Accept => 1,
        Action::Reject => 2,
    };
    r[7] = u8::from(flow.icmp_unknown);
    r[8..10].copy_from_slice(&flow.src_port.to_le_bytes());
    r[10..12].copy_from_slice(&flow.dst_port.to_le_bytes());
    r[12..16].copy_from_slice(&flow.sampling_interval.to_le_bytes());
    r[48..56].copy_from_slice(&flow.packets.to_le_bytes());
    r[56..64].copy_from_slice(&flow.bytes.to_le_bytes());
    r[64..72].copy_from_slice(&flow.start_ms.to_le_bytes());
    r[72..80].copy_from_slice(&flow.end_ms.to_le_bytes());
    out.extend_from_slice(&r);
}

/// Reads one packed record. The input comes from an untrusted plugin, so
/// every enumerated byte is checked.
#[inline]
pub fn unpack(r: &[u8; PACKED_FLOW_LEN]) -> Result<Flow, UnpackError> {
    let u16_at = |at: usize| u16::from_le_bytes([r[at], r[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(r[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(r[at..at + 8].try_into().expect("8 bytes"));
    Ok(Flow {
        src: get_ip(r[0], &r[16..32])?,
        dst: get_ip(r[1], &r[32..48])?,
        protocol: r[2],
        tcp_flags: r[3],
        icmp_type: r[4],
        icmp_code: r[5],
        // Bit 0; the other bits are reserved and ignored.
        icmp_unknown: r[7] & 1 != 0,
        action: match r[6] {
            0 => Action::Unknown,
            1 => Action::Accept,
            2 => Action::Reject,
            other => return Err(UnpackError::Action(other)),
        },
        src_port: u16_at(8),
        dst_port: u16_at(10),
        sampling_interval: u32_at(12),
        packets: u64_at(48),
        bytes: u64_at(56),
        start_ms: u64_at(64),
        end_ms: u64_at(72),
    })
}

/// Both families, every field set, ICMP with and without a type: for
/// the tests of the packed form.
#[cfg(test)]
pub(crate) fn sample_flows() -> [Flow; 3] {
    [
        Flow {
            src: IpAddr::V4(0x0a00_0001),
            dst: IpAddr::V6((0x2001_0db8_0000_0000, 1)),
            src_port: 40000,
            dst_port: 443,
            protocol: 6,
            packets: u64::MAX,
            bytes: 1 << 40,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_000_999,
            sampling_interval: 1000,
            tcp_flags: 0x1b,
            icmp_type: 0,
            icmp_code: 0,
            icmp_unknown: false,
            action: Action::Reject,
        },
        Flow {
            src: IpAddr::V6((u64::MAX, 7)),
            dst: IpAddr::V4(u32::MAX),
            protocol: 58,
            icmp_type: 128,
            icmp_code: 3,
            action: Action::Accept,
            ..Default::default()
        },
        Flow {
            protocol: 1,
            icmp_unknown: true,
            ..Default::default()
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families_and_every_field() {
        let flows = sample_flows();
        let mut packed = Vec::new();
        for f in &flows {
            pack(f, &mut packed);
        }
        assert_eq!(packed.len(), flows.len() * PACKED_FLOW_LEN);
        for (i, f) in flows.iter().enumerate() {
            let record: &[u8; PACKED_FLOW_LEN] = packed[i * PACKED_FLOW_LEN..][..PACKED_FLOW_LEN]
                .try_into()
                .unwrap();
            assert_eq!(unpack(record).unwrap(), *f);
        }
    }

    #[test]
    fn refuses_bad_family_and_action_bytes() {
        let mut packed = Vec::new();
        pack(&Flow::default(), &mut packed);
        let mut record: [u8; PACKED_FLOW_LEN] = packed.try_into().unwrap();
        record[1] = 5;
        assert_eq!(unpack(&record), Err(UnpackError::Family(5)));
        record[1] = 4;
        record[6] = 9;
        assert_eq!(unpack(&record), Err(UnpackError::Action(9)));
    }
}

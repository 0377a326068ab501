//! Walks a sampled packet's headers (sFlow raw packet header records):
//! Ethernet, 802.1Q / QinQ tags, MPLS label stacks, IPv4, IPv6 with its
//! extension headers, then TCP / UDP / ICMP / ICMPv6. Headers are usually
//! cut at 128 bytes, so a transport header that is missing is not an error.

use std::net::IpAddr;

/// What flowlink keeps of a sampled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The IP packet's length from its own header (IPv4 total length,
    /// IPv6 payload length + 40): the byte count flowlink reports.
    pub ip_length: u32,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// More VLAN tags or MPLS labels than this is not a real packet.
const MAX_STACK: usize = 16;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// From an Ethernet frame.
pub fn from_ethernet(frame: &[u8]) -> Result<PacketSummary, &'static str> {
    let mut ethertype = be16(frame, 12).ok_or("Ethernet header cut short")?;
    let mut at = 14;
    for _ in 0..MAX_STACK {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                ethertype = be16(frame, at + 2).ok_or("VLAN tag cut short")?;
                at += 4;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                return from_mpls(&frame[at.min(frame.len())..]);
            }
            ETHERTYPE_IPV4 => return from_ipv4(&frame[at.min(frame.len())..]),
            ETHERTYPE_IPV6 => return from_ipv6(&frame[at.min(frame.len())..]),
            _ => return Err("not an IP packet"),
        }
    }
    Err("too many VLAN tags")
}

/// After the MPLS stack the payload's first nibble says IPv4 or IPv6.
fn from_mpls(stack: &[u8]) -> Result<PacketSummary, &'static str> {
    for depth in 0..MAX_STACK {
        let at = depth * 4;
        let entry = stack.get(at..at + 4).ok_or("MPLS label stack cut short")?;
        if entry[2] & 0x01 != 0 {
            let payload = &stack[at + 4..];
            return match payload.first().map(|b| b >> 4) {
                Some(4) => from_ipv4(payload),
                Some(6) => from_ipv6(payload),
                _ => Err("MPLS payload is not IP"),
            };
        }
    }
    Err("MPLS label stack too deep")
}

/// From an IP packet (either version, by its first nibble).
pub fn from_ip(packet: &[u8]) -> Result<PacketSummary, &'static str> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => from_ipv4(packet),
        Some(6) => from_ipv6(packet),
        _ => Err("not an IP packet"),
    }
}

pub fn from_ipv4(packet: &[u8]) -> Result<PacketSummary, &'static str> {
    let header = packet.get(..20).ok_or("IPv4 header cut short")?;
    let ihl = usize::from(header[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err("IPv4 header length below 20");
    }
    let total_length = u32::from(u16::from_be_bytes([header[2], header[3]]));
    let fragment_offset = u16::from_be_bytes([header[6], header[7]]) & 0x1fff;
    let protocol = header[9];
    let src = IpAddr::from(<[u8; 4]>::try_from(&header[12..16]).expect("4 bytes"));
    let dst = IpAddr::from(<[u8; 4]>::try_from(&header[16..20]).expect("4 bytes"));
    let mut summary = PacketSummary {
        src,
        dst,
        protocol,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        ip_length: total_length,
    };
    // Only the first fragment carries the transport header.
    if fragment_offset == 0
        && let Some(transport) = packet.get(ihl..)
    {
        read_transport(&mut summary, transport);
    }
    Ok(summary)
}

pub fn from_ipv6(packet: &[u8]) -> Result<PacketSummary, &'static str> {
    let header = packet.get(..40).ok_or("IPv6 header cut short")?;
    let payload_length = u32::from(u16::from_be_bytes([header[4], header[5]]));
    let src = IpAddr::from(<[u8; 16]>::try_from(&header[8..24]).expect("16 bytes"));
    let dst = IpAddr::from(<[u8; 16]>::try_from(&header[24..40]).expect("16 bytes"));
    let mut next = header[6];
    let mut at = 40;
    let mut first_fragment = true;
    for _ in 0..MAX_STACK {
        match next {
            // Hop-by-hop, routing, destination options, mobility: (len + 1) * 8 bytes.
            0 | 43 | 60 | 135 => {
                let Some(ext) = packet.get(at..at + 2) else {
                    break;
                };
                next = ext[0];
                at += (usize::from(ext[1]) + 1) * 8;
            }
            44 => {
                let Some(ext) = packet.get(at..at + 8) else {
                    break;
                };
                next = ext[0];
                first_fragment = u16::from_be_bytes([ext[2], ext[3]]) >> 3 == 0;
                at += 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let Some(ext) = packet.get(at..at + 2) else {
                    break;
                };
                next = ext[0];
                at += (usize::from(ext[1]) + 2) * 4;
            }
            _ => break,
        }
    }
    let mut summary = PacketSummary {
        src,
        dst,
        protocol: next,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        ip_length: payload_length + 40,
    };
    if first_fragment && let Some(transport) = packet.get(at..) {
        read_transport(&mut summary, transport);
    }
    Ok(summary)
}

/// Ports, TCP flags or ICMP type and code, as far as the header reaches.
fn read_transport(summary: &mut PacketSummary, transport: &[u8]) {
    match summary.protocol {
        6 | 17 | 132 | 136 => {
            if let (Some(src), Some(dst)) = (be16(transport, 0), be16(transport, 2)) {
                summary.src_port = src;
                summary.dst_port = dst;
            }
            if summary.protocol == 6
                && let Some(flags) = transport.get(13)
            {
                summary.tcp_flags = *flags;
            }
        }
        1 | 58 => {
            if let Some(bytes) = transport.get(..2) {
                summary.icmp_type = bytes[0];
                summary.icmp_code = bytes[1];
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 60, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 40, 0, 0]);
        p
    }

    fn ethernet(ethertypes: &[u16], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for (i, t) in ethertypes.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < ethertypes.len() {
                f.extend_from_slice(&[0, 10]); // TCI
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn qinq_tagged_udp() {
        let frame = ethernet(
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_IPV4],
            &ipv4_udp(),
        );
        let s = from_ethernet(&frame).unwrap();
        assert_eq!(
            (s.src_port, s.dst_port, s.protocol, s.ip_length),
            (12345, 53, 17, 60)
        );
    }

    #[test]
    fn mpls_stack_then_ipv4() {
        let mut payload = vec![0, 0, 0x10, 64, 0, 0, 0x21, 64]; // two labels, the second bottom-of-stack
        payload.extend_from_slice(&ipv4_udp());
        let s = from_ethernet(&ethernet(&[ETHERTYPE_MPLS], &payload)).unwrap();
        assert_eq!(s.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.dst_port, 53);
    }

    #[test]
    fn ipv6_through_extension_headers_to_icmpv6() {
        let mut p = vec![0x60, 0, 0, 0, 0, 24, 0 /* hop-by-hop */, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(4));
        p.extend_from_slice(&[0xfd, 0, 0, 0].repeat(4));
        p.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop → destination options
        p.extend_from_slice(&[58, 0, 0, 0, 0, 0, 0, 0]); // destination options → ICMPv6
        p.extend_from_slice(&[128, 0, 0, 0]); // echo request
        let s = from_ipv6(&p).unwrap();
        assert_eq!(
            (s.protocol, s.icmp_type, s.icmp_code, s.ip_length),
            (58, 128, 0, 64)
        );
    }

    #[test]
    fn cut_headers_are_errors_or_partial_never_panics() {
        let full = ethernet(&[ETHERTYPE_IPV4], &ipv4_udp());
        for len in 0..full.len() {
            let _ = from_ethernet(&full[..len]);
        }
        assert!(from_ethernet(&full[..20]).is_err());
        let partial = from_ethernet(&full[..14 + 20 + 2]).unwrap();
        assert_eq!(partial.dst_port, 0, "ports cut off");
    }
}

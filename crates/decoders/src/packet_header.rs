//! Walks a sampled packet's headers: sFlow raw packet header records and
//! the IPFIX / PSAMP packet sections of RFC 7133 (`dataLinkFrameSection`,
//! `ipHeaderPacketSection`). Ethernet, 802.1Q / QinQ tags, MPLS label
//! stacks (with Ethernet pseudowires behind them), IPv4, IPv6 with its
//! extension headers, then TCP / UDP / ICMP / ICMPv6. Headers are usually
//! cut (sFlow at 128 bytes), so a transport header that is missing is not
//! an error.

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
/// Ethernet frames carried in pseudowires inside Ethernet frames: the
/// outer frame and up to three nested ones. Bounds the recursion.
const MAX_FRAMES: usize = 4;

/// Calls `$callback! { "reason", … }` with every reason the walker gives,
/// so a caller can build `&'static str` messages around them with
/// `concat!`. A test checks that every reason in this file is listed.
macro_rules! walker_reasons {
    ($callback:ident) => {
        $callback! {
            "Ethernet header cut short",
            "VLAN tag cut short",
            "not an IP packet",
            "too many VLAN tags",
            "MPLS label stack cut short",
            "MPLS payload is not IP",
            "MPLS label stack too deep",
            "pseudowire control word cut short",
            "pseudowires nested too deep",
            "IPv4 header cut short",
            "IPv4 header length below 20",
            "IPv6 header cut short",
        }
    };
}
pub(crate) use walker_reasons;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// From an Ethernet frame.
pub fn from_ethernet(frame: &[u8]) -> Result<PacketSummary, &'static str> {
    ethernet_at(frame, 1)
}

/// `depth` counts this frame and the frames around it.
fn ethernet_at(frame: &[u8], depth: usize) -> Result<PacketSummary, &'static str> {
    let mut ethertype = be16(frame, 12).ok_or("Ethernet header cut short")?;
    let mut at = 14;
    for _ in 0..MAX_STACK {
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                ethertype = be16(frame, at + 2).ok_or("VLAN tag cut short")?;
                at += 4;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                return from_mpls(&frame[at.min(frame.len())..], depth);
            }
            ETHERTYPE_IPV4 => return from_ipv4(&frame[at.min(frame.len())..]),
            ETHERTYPE_IPV6 => return from_ipv6(&frame[at.min(frame.len())..]),
            _ => return Err("not an IP packet"),
        }
    }
    Err("too many VLAN tags")
}

/// After the MPLS stack the payload's first nibble says what follows:
/// IPv4 (4), IPv6 (6), or a pseudowire control word (0).
fn from_mpls(stack: &[u8], depth: usize) -> Result<PacketSummary, &'static str> {
    for entry_index in 0..MAX_STACK {
        let at = entry_index * 4;
        let entry = stack.get(at..at + 4).ok_or("MPLS label stack cut short")?;
        if entry[2] & 0x01 != 0 {
            let payload = &stack[at + 4..];
            return match payload.first().map(|b| b >> 4) {
                Some(4) => from_ipv4(payload),
                Some(6) => from_ipv6(payload),
                Some(0) => from_pseudowire(payload, depth),
                _ => Err("MPLS payload is not IP"),
            };
        }
    }
    Err("MPLS label stack too deep")
}

/// An Ethernet pseudowire (RFC 4448) with its control word (RFC 4385 §3):
/// four bits 0000, flags (4 bits), FRG (2), length (6), sequence number
/// (16), then the customer's Ethernet frame without preamble or FCS. The
/// first nibble 0 is what tells a control word from an IP header; the
/// pseudowire type is signalled out of band, so Ethernet is assumed (a
/// non-Ethernet payload then fails as "not an IP packet").
fn from_pseudowire(payload: &[u8], depth: usize) -> Result<PacketSummary, &'static str> {
    let Some(frame) = payload.get(4..) else {
        return Err("pseudowire control word cut short");
    };
    if depth >= MAX_FRAMES {
        return Err("pseudowires nested too deep");
    }
    ethernet_at(frame, depth + 1)
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

    /// Outer Ethernet, a two-label MPLS stack, the pseudowire control word,
    /// the customer's Ethernet frame, IPv4, UDP: an Ethernet-over-MPLS
    /// pseudowire (RFC 4448 §3) as a provider router samples it.
    fn pseudowire_frame() -> Vec<u8> {
        vec![
            // Outer Ethernet II header (IEEE 802.3 §3.1.1).
            // MACs from the documentation range of RFC 7042 §2.1.
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // destination MAC
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // source MAC
            0x88, 0x47, // EtherType: MPLS unicast
            // MPLS label stack entries (RFC 3032 §2.1): label (20 bits),
            // traffic class (3), bottom of stack S (1), TTL (8).
            0x00, 0x01, 0x00, 0x40, // label 16 (tunnel), TC 0, S 0, TTL 64
            0x00, 0x01, 0x11, 0x40, // label 17 (pseudowire), TC 0, S 1, TTL 64
            // Pseudowire control word (RFC 4385 §3): 0000, flags 0000,
            // FRG 00, length 000000 (payload not padded), sequence number.
            0x00, 0x00, 0x00, 0x07, // ... sequence number 7
            // Customer Ethernet frame, no preamble or FCS (RFC 4448 §4.4).
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination MAC (locally administered)
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source MAC
            0x08, 0x00, // EtherType: IPv4
            // IPv4 header (RFC 791 §3.1).
            0x45, // version 4, IHL 5 (20 bytes)
            0x00, // DSCP 0, ECN 0
            0x00, 0x21, // total length 33 = 20 + 8 (UDP) + 5 (payload)
            0x12, 0x34, // identification
            0x00, 0x00, // flags 0, fragment offset 0
            0x40, // TTL 64
            0x11, // protocol 17 (UDP)
            0x00, 0x00, // header checksum (not checked)
            198, 51, 100, 1, // source 198.51.100.1 (RFC 5737 TEST-NET-2)
            203, 0, 113, 9, // destination 203.0.113.9 (RFC 5737 TEST-NET-3)
            // UDP header (RFC 768).
            0x13, 0x88, // source port 5000
            0x00, 0x35, // destination port 53
            0x00, 0x0d, // length 13 = 8 + 5
            0x00, 0x00, // checksum (none)
            b'h', b'e', b'l', b'l', b'o', // payload
        ]
    }

    #[test]
    fn ethernet_pseudowire_with_control_word_is_decoded_to_the_inner_packet() {
        let s = from_ethernet(&pseudowire_frame()).unwrap();
        assert_eq!(s.src, "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.dst, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s.protocol, s.src_port, s.dst_port, s.ip_length),
            (17, 5000, 53, 33)
        );
    }

    #[test]
    fn pseudowire_carrying_a_vlan_tagged_ipv6_tcp_segment() {
        let frame: &[u8] = &[
            // Outer Ethernet II header.
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x01, // destination MAC
            0x00, 0x00, 0x5e, 0x00, 0x53, 0x02, // source MAC
            0x88, 0x47, // EtherType: MPLS unicast
            // One MPLS label stack entry (RFC 3032 §2.1).
            0x00, 0x06, 0x41, 0xff, // label 100, TC 0, S 1, TTL 255
            // Pseudowire control word (RFC 4385 §3), sequence number 0 (unused).
            0x00, 0x00, 0x00, 0x00,
            // Customer Ethernet frame with an 802.1Q tag (IEEE 802.1Q §9.3).
            0x02, 0x00, 0x00, 0x00, 0x00, 0x03, // destination MAC
            0x02, 0x00, 0x00, 0x00, 0x00, 0x04, // source MAC
            0x81, 0x00, // TPID: 802.1Q
            0x00, 0x2a, // PCP 0, DEI 0, VLAN 42
            0x86, 0xdd, // EtherType: IPv6
            // IPv6 header (RFC 8200 §3).
            0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
            0x00, 0x14, // payload length 20 (the TCP header)
            0x06, // next header: TCP
            0x40, // hop limit 64
            // Source 2001:db8::1, destination 2001:db8::2 (RFC 3849).
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // source
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // destination
            // TCP header (RFC 9293 §3.1).
            0xc0, 0x00, // source port 49152
            0x01, 0xbb, // destination port 443
            0x00, 0x00, 0x00, 0x01, // sequence number
            0x00, 0x00, 0x00, 0x00, // acknowledgment number
            0x50, // data offset 5, reserved
            0x02, // flags: SYN
            0xff, 0xff, // window
            0x00, 0x00, // checksum
            0x00, 0x00, // urgent pointer
        ];
        let s = from_ethernet(frame).unwrap();
        assert_eq!(s.src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.dst, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s.protocol, s.src_port, s.dst_port, s.tcp_flags, s.ip_length),
            (6, 49152, 443, 0x02, 60)
        );
    }

    #[test]
    fn mpls_payload_of_another_kind_is_an_error() {
        let mut frame = pseudowire_frame();
        // Byte 22 starts the control word; first nibble 0001 is the
        // pseudowire associated channel (RFC 4385 §5), not data.
        frame[22] = 0x10;
        assert_eq!(from_ethernet(&frame), Err("MPLS payload is not IP"));
        frame[22] = 0x50; // no payload type starts with 5
        assert_eq!(from_ethernet(&frame), Err("MPLS payload is not IP"));
        // A control word cut short: the frame ends two bytes into it.
        assert_eq!(
            from_ethernet(&pseudowire_frame()[..24]),
            Err("pseudowire control word cut short")
        );
    }

    #[test]
    fn nested_pseudowires_are_bounded() {
        // Each level: Ethernet header, one bottom-of-stack label, control word.
        let wrap = |inner: Vec<u8>| {
            let mut f = ethernet(&[ETHERTYPE_MPLS], &[0x00, 0x01, 0x01, 0x40]);
            f.extend_from_slice(&[0, 0, 0, 0]);
            f.extend_from_slice(&inner);
            f
        };
        let mut frame = ethernet(&[ETHERTYPE_IPV4], &ipv4_udp());
        for _ in 1..MAX_FRAMES {
            frame = wrap(frame);
        }
        assert_eq!(from_ethernet(&frame).unwrap().dst_port, 53);
        assert_eq!(
            from_ethernet(&wrap(frame)),
            Err("pseudowires nested too deep")
        );
    }

    #[test]
    fn every_reason_the_walker_gives_is_listed() {
        macro_rules! as_slice {
            ($($reason:literal),* $(,)?) => {
                &[$($reason),*]
            };
        }
        let listed: &[&str] = walker_reasons!(as_slice);
        let source = include_str!("packet_header.rs");
        let code = source.split("#[cfg(test)]").next().unwrap();
        let given: Vec<&str> = ["Err(\"", "ok_or(\""]
            .into_iter()
            .flat_map(|opening| code.split(opening).skip(1))
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert!(given.len() >= listed.len(), "{given:?}");
        for reason in given {
            assert!(
                listed.contains(&reason),
                "{reason:?} is not in walker_reasons!"
            );
        }
    }
}

//! ICMP type and code carried in the port fields, for formats without an
//! ICMP element (NetFlow v5/v7; v9/IPFIX templates without IE 32/139/176–179).
//!
//! Exporters use two conventions:
//! - Cisco, softflowd, pmacct: destination port = type · 256 + code,
//!   source port 0.
//! - fprobe and others: source port = type, destination port = code.
//!
//! Codes are below 256 and Cisco leaves the source port 0, so a non-zero
//! source port with a destination port below 256 is the second convention.
//! Both give type 0 (echo reply) for two zero ports.

/// `(type, code)` of an ICMP or ICMPv6 record from its ports.
pub fn icmp_from_ports(src_port: u16, dst_port: u16) -> (u8, u8) {
    if src_port != 0 && src_port < 256 && dst_port < 256 {
        (src_port as u8, dst_port as u8)
    } else {
        ((dst_port >> 8) as u8, dst_port as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conventions() {
        // Cisco: echo request 8/0 = 0x0800, port unreachable 3/3 = 0x0303.
        assert_eq!(icmp_from_ports(0, 0x0800), (8, 0));
        assert_eq!(icmp_from_ports(0, 0x0303), (3, 3));
        assert_eq!(icmp_from_ports(0, 0), (0, 0));
        // fprobe: sport = type, dport = code.
        assert_eq!(icmp_from_ports(8, 0), (8, 0));
        assert_eq!(icmp_from_ports(3, 1), (3, 1));
        assert_eq!(icmp_from_ports(128, 0), (128, 0), "ICMPv6 echo request");
    }
}

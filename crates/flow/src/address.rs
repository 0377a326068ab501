//! Conversions between the WIT address variant and `std::net`.

use std::net::{IpAddr as StdIp, Ipv4Addr, Ipv6Addr};

use crate::IpAddr;

#[inline]
pub fn ip_from_std(ip: StdIp) -> IpAddr {
    match ip {
        StdIp::V4(v4) => IpAddr::V4(u32::from(v4)),
        // By halves, not through `u128`: the wasm32 components have no
        // 128-bit registers, and `u128` arithmetic there can become calls
        // to compiler helpers.
        StdIp::V6(v6) => {
            let octets = v6.octets();
            let half = |at: usize| u64::from_be_bytes(octets[at..at + 8].try_into().expect("8"));
            IpAddr::V6((half(0), half(8)))
        }
    }
}

#[inline]
pub fn ip_to_std(ip: IpAddr) -> StdIp {
    match ip {
        IpAddr::V4(v4) => StdIp::V4(Ipv4Addr::from(v4)),
        IpAddr::V6((hi, lo)) => {
            let mut octets = [0; 16];
            octets[..8].copy_from_slice(&hi.to_be_bytes());
            octets[8..].copy_from_slice(&lo.to_be_bytes());
            StdIp::V6(Ipv6Addr::from(octets))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_halves_are_the_address_in_network_order() {
        let ip: StdIp = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            ip_from_std(ip),
            IpAddr::V6((0x2001_0db8_0001_0002, 0x0003_0004_0005_0006))
        );
    }

    #[test]
    fn round_trips_both_families() {
        for text in ["10.1.2.3", "255.255.255.255", "2001:db8::1", "fd00::ffff:1"] {
            let ip: StdIp = text.parse().unwrap();
            assert_eq!(ip_to_std(ip_from_std(ip)), ip, "{text}");
        }
        assert_eq!(
            ip_from_std("10.0.0.1".parse().unwrap()),
            IpAddr::V4(0x0a00_0001)
        );
    }
}

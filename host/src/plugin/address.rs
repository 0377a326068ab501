//! Conversions between `std::net` addresses and the WIT `ip-addr` variant.

use std::net::IpAddr as StdIp;

use super::IpAddr;

pub fn ip_to_wit(ip: StdIp) -> IpAddr {
    match ip {
        StdIp::V4(v4) => IpAddr::V4(u32::from(v4)),
        StdIp::V6(v6) => match v6.to_ipv4_mapped() {
            // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
            Some(v4) => IpAddr::V4(u32::from(v4)),
            None => {
                let bits = u128::from(v6);
                IpAddr::V6(((bits >> 64) as u64, bits as u64))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_becomes_ipv4_and_v6_keeps_its_bits() {
        let mapped: StdIp = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_to_wit(mapped), IpAddr::V4(0x0a01_0203));
        let v6: StdIp = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_to_wit(v6), IpAddr::V6((0x2001_0db8_0000_0000, 1)));
    }
}

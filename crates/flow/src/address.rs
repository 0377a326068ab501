//! Conversions between the WIT address variant and `std::net`.

use std::net::{IpAddr as StdIp, Ipv4Addr, Ipv6Addr};

use crate::IpAddr;

#[inline]
pub fn ip_from_std(ip: StdIp) -> IpAddr {
    match ip {
        StdIp::V4(v4) => IpAddr::V4(u32::from(v4)),
        StdIp::V6(v6) => {
            let bits = u128::from(v6);
            IpAddr::V6(((bits >> 64) as u64, bits as u64))
        }
    }
}

#[inline]
pub fn ip_to_std(ip: IpAddr) -> StdIp {
    match ip {
        IpAddr::V4(v4) => StdIp::V4(Ipv4Addr::from(v4)),
        IpAddr::V6((hi, lo)) => StdIp::V6(Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

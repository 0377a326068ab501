//! Helpers for parsers of text records (log lines, CSV, JSON): the
//! conversions every such format needs, with one spelling of each error.

use crate::{Action, IpAddr, ip_from_std};

/// The lines of a message with their index (counted from 0, blank lines
/// included, so a reject's index names the line an operator sees). A
/// trailing `\r` is removed; blank lines are skipped.
pub fn lines(payload: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    payload
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| (i as u32, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// An IPv4 or IPv6 address in its usual text form.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse::<std::net::IpAddr>()
        .map(ip_from_std)
        .map_err(|_| format!("{:?} is not an IP address", shorten(text)))
}

/// A port number 0–65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .map_err(|_| format!("{:?} is not a port number", shorten(text)))
}

/// An IANA protocol number, or its keyword (`tcp`, `UDP`, `icmp`, …).
pub fn parse_protocol(text: &str) -> Result<u8, String> {
    let text = text.trim();
    if let Ok(number) = text.parse::<u8>() {
        return Ok(number);
    }
    let number = match text.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" | "ipv4" | "ip-in-ip" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" | "icmp6" => 58,
        "eigrp" => 88,
        "ospf" | "ospfigp" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "l2tp" => 115,
        "sctp" => 132,
        "udplite" | "udp-lite" => 136,
        _ => {
            return Err(format!(
                "{:?} is not a protocol number or name",
                shorten(text)
            ));
        }
    };
    Ok(number)
}

/// A firewall verdict: ACCEPT/allow/permit/pass or REJECT/deny/drop/block,
/// any case.
pub fn parse_action(text: &str) -> Result<Action, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "accept" | "accepted" | "allow" | "allowed" | "permit" | "permitted" | "pass" => {
            Ok(Action::Accept)
        }
        "reject" | "rejected" | "deny" | "denied" | "drop" | "dropped" | "block" | "blocked" => {
            Ok(Action::Reject)
        }
        _ => Err(format!(
            "{:?} is not an action (accept or reject)",
            shorten(text)
        )),
    }
}

/// An unsigned counter (packets, bytes).
pub fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{:?} is not a count", shorten(text)))
}

/// At most 60 characters of `text`, for error messages about hostile input.
pub fn shorten(text: &str) -> &str {
    match text.char_indices().nth(60) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_index_and_drop_blank_ones() {
        let got: Vec<_> = lines(b"a\r\n\nb\n  \nc").collect();
        assert_eq!(got, vec![(0, &b"a"[..]), (2, b"b"), (4, b"c")]);
    }

    #[test]
    fn protocols_by_number_and_name() {
        assert_eq!(parse_protocol("6"), Ok(6));
        assert_eq!(parse_protocol("TCP"), Ok(6));
        assert_eq!(parse_protocol(" udp "), Ok(17));
        assert_eq!(parse_protocol("ipv6-icmp"), Ok(58));
        assert!(
            parse_protocol("300")
                .unwrap_err()
                .contains("not a protocol")
        );
    }

    #[test]
    fn addresses_ports_actions() {
        assert_eq!(parse_ip("10.0.0.1"), Ok(IpAddr::V4(0x0a00_0001)));
        assert!(matches!(parse_ip("2001:db8::1"), Ok(IpAddr::V6(_))));
        assert!(parse_ip("10.0.0.256").is_err());
        assert_eq!(parse_port("443"), Ok(443));
        assert!(parse_port("70000").is_err());
        assert_eq!(parse_action("ACCEPT"), Ok(Action::Accept));
        assert_eq!(parse_action("deny"), Ok(Action::Reject));
        assert!(parse_action("maybe").is_err());
    }

    #[test]
    fn long_input_is_shortened_in_errors() {
        let long = "x".repeat(500);
        assert!(parse_ip(&long).unwrap_err().len() < 100);
    }
}

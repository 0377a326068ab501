//! Which way a record points. A reply (from the service back to its
//! client) is folded into the client's key, so the PCE sees one service —
//! `client → server:port` — not a second one on the client's ephemeral port.
//!
//! The rule (`direction_inference: auto`), first match wins:
//! 1. ICMP echo reply (type 0) / ICMPv6 echo reply (129): a reply to the
//!    echo request (8 / 128) in the other direction.
//! 2. TCP with SYN and without ACK among the record's flags: the initiator
//!    (nobody answers a SYN with a SYN-only packet). Cumulative flags of a
//!    completed connection carry SYN and ACK on both sides, so this only
//!    decides for unanswered or one-sided records. Skipped with `ports`.
//! 3. TCP, UDP, SCTP: the service port is the one below 1024 if only one
//!    is; else the one in the service-port list if only one is; else the
//!    lower one. A record sent from the service port is a reply. Equal
//!    ports: as reported.
//! 4. Port 0 is "not carried" (FlowLink text configs without `src_port`,
//!    VPC `-` ports, a parser's default): it is never a service, and a
//!    record with either port unknown is keyed as reported — there is
//!    nothing to compare the known port against.
//!
//! `off` keys every record as reported.

use flowlink_flow::{Flow, FlowRef};

use crate::config::DirectionRule;

/// Registered ports (≥ 1024) that are services, not ephemeral ports, in
/// practice: databases, brokers, VoIP/STUN, overlays, orchestration, proxies.
pub const DEFAULT_SERVICE_PORTS: &[u16] = &[
    1433, 1521, 1812, 1813, 2049, 2181, 2379, 2380, 3306, 3389, 3478, 4369, 4789, 5060, 5061, 5349,
    5432, 5672, 5671, 5900, 5985, 5986, 6379, 6443, 6514, 8000, 8008, 8080, 8443, 8888, 9000, 9042,
    9092, 9093, 9200, 9300, 9418, 10250, 11211, 15672, 27017,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Forward,
    /// A reply: key it as `dst → src` on this (service) port.
    Reply {
        service_port: u16,
    },
}

/// What the rule reads of a record.
#[derive(Debug, Clone, Copy)]
pub struct L4Fields {
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    icmp_type: u8,
    icmp_unknown: bool,
}

impl From<&Flow> for L4Fields {
    #[inline]
    fn from(flow: &Flow) -> Self {
        L4Fields {
            protocol: flow.protocol,
            src_port: flow.src_port,
            dst_port: flow.dst_port,
            tcp_flags: flow.tcp_flags,
            icmp_type: flow.icmp_type,
            icmp_unknown: flow.icmp_unknown,
        }
    }
}

impl From<FlowRef<'_>> for L4Fields {
    #[inline]
    fn from(r: FlowRef) -> Self {
        L4Fields {
            protocol: r.protocol(),
            src_port: r.src_port(),
            dst_port: r.dst_port(),
            tcp_flags: r.tcp_flags(),
            icmp_type: r.icmp_type(),
            icmp_unknown: r.icmp_unknown(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DirectionInference {
    rule: DirectionRule,
    /// One bit per port (8 KiB): a record whose two ports are both above
    /// 1024 asks twice, and a bit test beats a binary search's branches.
    service_ports: Box<[u64]>,
}

impl DirectionInference {
    pub fn new(rule: DirectionRule, extra_service_ports: &[u16]) -> Self {
        let mut service_ports = vec![0u64; (usize::from(u16::MAX) + 1) / 64].into_boxed_slice();
        for &port in DEFAULT_SERVICE_PORTS.iter().chain(extra_service_ports) {
            service_ports[usize::from(port) / 64] |= 1 << (port % 64);
        }
        DirectionInference {
            rule,
            service_ports,
        }
    }

    fn is_service(&self, port: u16) -> bool {
        self.service_ports[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    #[inline]
    pub fn orientation(&self, l4: impl Into<L4Fields>) -> Orientation {
        let l4: L4Fields = l4.into();
        if self.rule == DirectionRule::Off {
            return Orientation::Forward;
        }
        match l4.protocol {
            // Without a type, 0 is no evidence of an echo reply.
            1 | 58 if l4.icmp_unknown => Orientation::Forward,
            1 if l4.icmp_type == 0 => Orientation::Reply {
                service_port: 8 << 8,
            },
            58 if l4.icmp_type == 129 => Orientation::Reply {
                service_port: 128 << 8,
            },
            6 if self.rule == DirectionRule::Auto && l4.tcp_flags & 0x12 == 0x02 => {
                Orientation::Forward
            }
            6 | 17 | 132 => self.by_ports(l4.src_port, l4.dst_port),
            _ => Orientation::Forward,
        }
    }

    fn by_ports(&self, src: u16, dst: u16) -> Orientation {
        if src == 0 || dst == 0 {
            return Orientation::Forward;
        }
        let src_is_service = match (src < 1024, dst < 1024) {
            (true, false) => true,
            (false, true) => false,
            _ => match (self.is_service(src), self.is_service(dst)) {
                (true, false) => true,
                (false, true) => false,
                _ => src < dst,
            },
        };
        if src_is_service && src != dst {
            Orientation::Reply { service_port: src }
        } else {
            Orientation::Forward
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlink_flow::IpAddr;

    fn flow(protocol: u8, src_port: u16, dst_port: u16, tcp_flags: u8, icmp_type: u8) -> Flow {
        Flow {
            src: IpAddr::V4(1),
            dst: IpAddr::V4(2),
            protocol,
            src_port,
            dst_port,
            tcp_flags,
            icmp_type,
            ..Flow::default()
        }
    }

    #[test]
    fn replies_by_port_flags_and_icmp() {
        let auto = DirectionInference::new(DirectionRule::Auto, &[]);
        use Orientation::*;
        assert_eq!(auto.orientation(&flow(6, 55706, 443, 0x1e, 0)), Forward);
        assert_eq!(
            auto.orientation(&flow(6, 443, 55706, 0x1a, 0)),
            Reply { service_port: 443 }
        );
        // A SYN-only record is the initiator even from a low port.
        assert_eq!(auto.orientation(&flow(6, 80, 8080, 0x02, 0)), Forward);
        // A known service beats "lower port": SIP from client port 1998.
        assert_eq!(auto.orientation(&flow(17, 1998, 5060, 0, 0)), Forward);
        assert_eq!(
            auto.orientation(&flow(17, 5060, 1998, 0, 0)),
            Reply { service_port: 5060 }
        );
        // Both ephemeral: the lower one.
        assert_eq!(
            auto.orientation(&flow(17, 40000, 50000, 0, 0)),
            Reply {
                service_port: 40000
            }
        );
        assert_eq!(auto.orientation(&flow(17, 4789, 4789, 0, 0)), Forward);
        assert_eq!(
            auto.orientation(&flow(1, 0, 0, 0, 0)),
            Reply {
                service_port: 0x0800
            }
        );
        assert_eq!(auto.orientation(&flow(1, 0, 0, 0, 8)), Forward);
        // A format without ICMP types (VPC flow logs): type 0 is not a reply.
        let untyped = Flow {
            icmp_unknown: true,
            ..flow(1, 0, 0, 0, 0)
        };
        assert_eq!(auto.orientation(&untyped), Forward);
        assert_eq!(
            auto.orientation(&flow(58, 0, 0, 0, 129)),
            Reply {
                service_port: 128 << 8
            }
        );
    }

    #[test]
    fn ports_rule_ignores_flags_and_off_keeps_everything() {
        let ports = DirectionInference::new(DirectionRule::Ports, &[]);
        assert_eq!(
            ports.orientation(&flow(6, 80, 8080, 0x02, 0)),
            Orientation::Reply { service_port: 80 }
        );
        let off = DirectionInference::new(DirectionRule::Off, &[]);
        assert_eq!(
            off.orientation(&flow(6, 443, 55706, 0x1a, 0)),
            Orientation::Forward
        );
    }

    #[test]
    fn extra_service_ports_count() {
        let custom = DirectionInference::new(DirectionRule::Auto, &[30000]);
        assert_eq!(
            custom.orientation(&flow(17, 30000, 20000, 0, 0)),
            Orientation::Reply {
                service_port: 30000
            }
        );
    }

    /// The documented rule as a table: every pair of port classes, every
    /// L4 protocol with ports, and the TCP flags that matter. `R` = reply
    /// (keyed `dst → src:sport`), `F` = as reported. Written from the rule
    /// in the module doc, not from the code.
    #[test]
    fn direction_table() {
        // Classes: unknown (0), well-known, registered service, registered
        // non-service, ephemeral.
        const PORTS: [u16; 5] = [0, 443, 5432, 3000, 51000];
        const BY_PORTS: [&str; 5] = [
            // dst:  0   443  5432 3000 51000
            "FFFFF", // src 0
            "FFRRR", // src 443
            "FFFRR", // src 5432
            "FFFFR", // src 3000
            "FFFFF", // src 51000
        ];
        let syn_only = ["FFFFF"; 5];
        let cases: [(DirectionRule, u8, u8, &[&str; 5]); 11] = [
            (DirectionRule::Auto, 6, 0x00, &BY_PORTS),
            (DirectionRule::Auto, 6, 0x02, &syn_only),
            (DirectionRule::Auto, 6, 0x12, &BY_PORTS),
            (DirectionRule::Auto, 6, 0x18, &BY_PORTS),
            (DirectionRule::Auto, 17, 0x00, &BY_PORTS),
            (DirectionRule::Auto, 132, 0x00, &BY_PORTS),
            (DirectionRule::Auto, 47, 0x00, &syn_only),
            (DirectionRule::Ports, 6, 0x02, &BY_PORTS),
            (DirectionRule::Ports, 17, 0x00, &BY_PORTS),
            (DirectionRule::Off, 6, 0x12, &syn_only),
            (DirectionRule::Off, 17, 0x00, &syn_only),
        ];
        for (rule, protocol, flags, table) in cases {
            let inference = DirectionInference::new(rule, &[]);
            for (row, &sport) in PORTS.iter().enumerate() {
                for (col, &dport) in PORTS.iter().enumerate() {
                    let want = match table[row].as_bytes()[col] {
                        b'R' => Orientation::Reply {
                            service_port: sport,
                        },
                        _ => Orientation::Forward,
                    };
                    assert_eq!(
                        inference.orientation(&flow(protocol, sport, dport, flags, 0)),
                        want,
                        "{rule:?} proto {protocol} flags {flags:#04x} {sport} -> {dport}"
                    );
                }
            }
        }
        // ICMP: only an echo reply of a format that carries the type.
        let auto = DirectionInference::new(DirectionRule::Auto, &[]);
        let icmp = [
            (1, 0, false, Some(8 << 8)),
            (1, 8, false, None),
            (1, 3, false, None),
            (1, 0, true, None),
            (58, 129, false, Some(128 << 8)),
            (58, 128, false, None),
        ];
        for (protocol, icmp_type, icmp_unknown, reply) in icmp {
            let record = Flow {
                icmp_unknown,
                ..flow(protocol, 0, 0, 0, icmp_type)
            };
            let want = reply.map_or(Orientation::Forward, |service_port| Orientation::Reply {
                service_port,
            });
            assert_eq!(auto.orientation(&record), want, "{protocol}/{icmp_type}");
        }
    }
}

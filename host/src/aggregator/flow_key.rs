//! The traffic key the PCE understands.

use std::net::IpAddr;

use flowlink_flow::{Action, Flow, ip_to_std};

use super::direction::{DirectionInference, Orientation};

/// `(src, dst, dst port, protocol)` plus the firewall verdict, so accepted
/// and rejected traffic are never summed together. For ICMP and ICMPv6 the
/// "port" is `type * 256 + code`: an echo request and a port-unreachable
/// are different services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub protocol: u8,
    pub action: u8,
}

impl FlowKey {
    /// The key of a record as reported.
    pub fn of(flow: &Flow) -> Self {
        let dst_port = match flow.protocol {
            1 | 58 => u16::from(flow.icmp_type) << 8 | u16::from(flow.icmp_code),
            _ => flow.dst_port,
        };
        FlowKey {
            src: ip_to_std(flow.src),
            dst: ip_to_std(flow.dst),
            dst_port,
            protocol: flow.protocol,
            action: action_code(flow.action),
        }
    }

    /// The key a record folds into: a reply counts toward its client's key.
    pub fn folded(flow: &Flow, direction: &DirectionInference) -> Self {
        let key = FlowKey::of(flow);
        match direction.orientation(flow) {
            Orientation::Forward => key,
            Orientation::Reply { service_port } => FlowKey {
                src: key.dst,
                dst: key.src,
                dst_port: service_port,
                ..key
            },
        }
    }
}

/// The protobuf `action` value.
pub fn action_code(action: Action) -> u8 {
    match action {
        Action::Unknown => 0,
        Action::Accept => 1,
        Action::Reject => 2,
    }
}

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
        FlowKey {
            src: ip_to_std(flow.src),
            dst: ip_to_std(flow.dst),
            dst_port: key_port(flow.protocol, flow.icmp_type, flow.icmp_code, flow.dst_port),
            protocol: flow.protocol,
            action: action_code(flow.action),
        }
    }

    /// The key a record folds into: a reply counts toward its client's key.
    pub fn folded(flow: &Flow, direction: &DirectionInference) -> Self {
        let key = FlowKey::of(flow);
        let orientation = direction.orientation(flow);
        let (src, dst, dst_port) = orient(key.src, key.dst, key.dst_port, orientation);
        FlowKey {
            src,
            dst,
            dst_port,
            ..key
        }
    }
}

/// The key's port: the destination port, or for ICMP and ICMPv6
/// `type * 256 + code`.
#[inline]
pub fn key_port(protocol: u8, icmp_type: u8, icmp_code: u8, dst_port: u16) -> u16 {
    match protocol {
        1 | 58 => u16::from(icmp_type) << 8 | u16::from(icmp_code),
        _ => dst_port,
    }
}

/// A key's ends and port as oriented: a reply swaps the ends and takes
/// the service's port.
#[inline]
pub fn orient<A>(src: A, dst: A, dst_port: u16, orientation: Orientation) -> (A, A, u16) {
    match orientation {
        Orientation::Forward => (src, dst, dst_port),
        Orientation::Reply { service_port } => (dst, src, service_port),
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

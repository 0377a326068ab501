//! `flowlink.v1.AggregatedFlow`, written by hand rather than generated:
//! its three `bytes` addresses are `IpAddr`s here. Generated, each would be
//! a `Bytes` (32 bytes and a shared reference count: a million-key
//! window's close spent an eighth of the daemon's CPU cloning and dropping
//! them) or a `Vec<u8>` (an allocation each). The wire format is the
//! schema's: `proto/flowlink/v1/flow_batch.proto`.

use std::net::{IpAddr, Ipv4Addr};

use prost::DecodeError;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, check_wire_type, decode_varint, skip_field, uint32, uint64,
};

/// One traffic key of the window: (src, dst, dst_port, protocol).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AggregatedFlow {
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// For ICMP and ICMPv6: type * 256 + code.
    pub dst_port: u32,
    pub protocol: u32,
    /// Flow records folded into this key.
    pub connections: u64,
    /// Scaled by each record's sampling interval.
    pub packets: u64,
    pub bytes: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The exporter that reported the key first in this window.
    pub exporter: IpAddr,
    /// 0 unknown, 1 accepted, 2 rejected (where the source says).
    pub action: u32,
}

/// An absent address field decodes as this (proto3 leaves empty `bytes`
/// out); flowlink itself always writes all three.
const UNSET: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Default for AggregatedFlow {
    fn default() -> Self {
        AggregatedFlow {
            src_ip: UNSET,
            dst_ip: UNSET,
            dst_port: 0,
            protocol: 0,
            connections: 0,
            packets: 0,
            bytes: 0,
            first_seen_ms: 0,
            last_seen_ms: 0,
            exporter: UNSET,
            action: 0,
        }
    }
}

/// One flow's encoding, written on the stack and handed over in one
/// `put_slice`: through `BufMut` every byte of every varint was a call
/// with a capacity check (a tenth of the daemon's CPU at a million keys).
/// At most 3 × 18 bytes of addresses, 3 × 6 of `uint32` and 5 × 11 of
/// `uint64` fields, 127 bytes; tags 1–11 are all one-byte keys.
struct FlowBytes {
    bytes: [u8; 128],
    len: usize,
}

impl Default for FlowBytes {
    fn default() -> Self {
        FlowBytes {
            bytes: [0; 128],
            len: 0,
        }
    }
}

impl FlowBytes {
    fn byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// A varint field (`uint32`/`uint64`), left out when zero.
    fn varint_field(&mut self, tag: u8, v: u64) {
        if v != 0 {
            self.byte(tag << 3); // wire type 0
            self.varint(v);
        }
    }

    /// A `bytes` field of 4 or 16 octets, network order.
    fn ip(&mut self, tag: u8, ip: &IpAddr) {
        self.byte(tag << 3 | 2); // wire type 2
        let octets = match ip {
            IpAddr::V4(v4) => &v4.octets()[..],
            IpAddr::V6(v6) => &v6.octets()[..],
        };
        self.byte(octets.len() as u8);
        self.bytes[self.len..self.len + octets.len()].copy_from_slice(octets);
        self.len += octets.len();
    }

    fn written(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Tags 1–15 take one byte of key, the length one more.
fn ip_len(ip: &IpAddr) -> usize {
    2 + if ip.is_ipv4() { 4 } else { 16 }
}

fn merge_ip(wire_type: WireType, ip: &mut IpAddr, buf: &mut impl Buf) -> Result<(), DecodeError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(invalid("buffer underflow"));
    }
    *ip = match len {
        0 => UNSET,
        4 => {
            let mut o = [0; 4];
            buf.copy_to_slice(&mut o);
            IpAddr::from(o)
        }
        16 => {
            let mut o = [0; 16];
            buf.copy_to_slice(&mut o);
            IpAddr::from(o)
        }
        _ => return Err(invalid("an address of neither 4 nor 16 bytes")),
    };
    Ok(())
}

/// prost has no other way for a hand-written message to say what is wrong
/// (the constructor is deprecated, not gone, in 0.14).
#[allow(deprecated)]
#[cold]
fn invalid(what: &'static str) -> DecodeError {
    DecodeError::new(what)
}

impl AggregatedFlow {
    /// The flow as field `tag` of the message around it (key, length,
    /// encoding), measured and written in one pass: its encoding is at
    /// most 127 bytes, so the length is always one byte. prost's
    /// `message::encode` measures a flow once for the length and once more
    /// for the buffer's capacity.
    pub fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        let mut out = FlowBytes::default();
        self.write(&mut out);
        prost::encoding::encode_key(tag, WireType::LengthDelimited, buf);
        buf.put_u8(out.len as u8);
        buf.put_slice(out.written());
    }

    fn write(&self, out: &mut FlowBytes) {
        out.ip(1, &self.src_ip);
        out.ip(2, &self.dst_ip);
        // proto3: zeros are left out, as generated code does.
        out.varint_field(3, u64::from(self.dst_port));
        out.varint_field(4, u64::from(self.protocol));
        out.varint_field(5, self.connections);
        out.varint_field(6, self.packets);
        out.varint_field(7, self.bytes);
        out.varint_field(8, self.first_seen_ms);
        out.varint_field(9, self.last_seen_ms);
        out.ip(10, &self.exporter);
        out.varint_field(11, u64::from(self.action));
    }
}

impl prost::Message for AggregatedFlow {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        let mut out = FlowBytes::default();
        self.write(&mut out);
        buf.put_slice(out.written());
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => merge_ip(wire_type, &mut self.src_ip, buf),
            2 => merge_ip(wire_type, &mut self.dst_ip, buf),
            3 => uint32::merge(wire_type, &mut self.dst_port, buf, ctx),
            4 => uint32::merge(wire_type, &mut self.protocol, buf, ctx),
            5 => uint64::merge(wire_type, &mut self.connections, buf, ctx),
            6 => uint64::merge(wire_type, &mut self.packets, buf, ctx),
            7 => uint64::merge(wire_type, &mut self.bytes, buf, ctx),
            8 => uint64::merge(wire_type, &mut self.first_seen_ms, buf, ctx),
            9 => uint64::merge(wire_type, &mut self.last_seen_ms, buf, ctx),
            10 => merge_ip(wire_type, &mut self.exporter, buf),
            11 => uint32::merge(wire_type, &mut self.action, buf, ctx),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let u32_len = |tag, v: &u32| {
            if *v != 0 {
                uint32::encoded_len(tag, v)
            } else {
                0
            }
        };
        let u64_len = |tag, v: &u64| {
            if *v != 0 {
                uint64::encoded_len(tag, v)
            } else {
                0
            }
        };
        ip_len(&self.src_ip)
            + ip_len(&self.dst_ip)
            + u32_len(3, &self.dst_port)
            + u32_len(4, &self.protocol)
            + u64_len(5, &self.connections)
            + u64_len(6, &self.packets)
            + u64_len(7, &self.bytes)
            + u64_len(8, &self.first_seen_ms)
            + u64_len(9, &self.last_seen_ms)
            + ip_len(&self.exporter)
            + u32_len(11, &self.action)
    }

    fn clear(&mut self) {
        *self = AggregatedFlow::default();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto::generated;

    fn flow() -> AggregatedFlow {
        AggregatedFlow {
            src_ip: "10.1.2.3".parse().unwrap(),
            dst_ip: "2001:db8::7".parse().unwrap(),
            dst_port: 443,
            protocol: 6,
            connections: 3,
            packets: 300,
            bytes: 1 << 40,
            first_seen_ms: 1_700_000_000_000,
            last_seen_ms: 0,
            exporter: "192.0.2.9".parse().unwrap(),
            action: 2,
        }
    }

    /// The same flow as prost generates the schema.
    fn reference() -> generated::AggregatedFlow {
        generated::AggregatedFlow {
            src_ip: vec![10, 1, 2, 3],
            dst_ip: vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
            dst_port: 443,
            protocol: 6,
            connections: 3,
            packets: 300,
            bytes: 1 << 40,
            first_seen_ms: 1_700_000_000_000,
            last_seen_ms: 0,
            exporter: vec![192, 0, 2, 9],
            action: 2,
        }
    }

    #[test]
    fn encodes_byte_for_byte_as_the_generated_message() {
        let ours = flow().encode_to_vec();
        assert_eq!(ours, reference().encode_to_vec());
        assert_eq!(flow().encoded_len(), ours.len());
        // Zeros left out everywhere, as generated code does.
        let zeros = AggregatedFlow::default();
        let reference = generated::AggregatedFlow {
            src_ip: vec![0; 4],
            dst_ip: vec![0; 4],
            exporter: vec![0; 4],
            ..Default::default()
        };
        assert_eq!(zeros.encode_to_vec(), reference.encode_to_vec());
        assert_eq!(zeros.encoded_len(), reference.encoded_len());
    }

    #[test]
    fn the_longest_flow_fits_and_matches_too() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let longest = AggregatedFlow {
            src_ip: v6,
            dst_ip: v6,
            dst_port: u32::MAX,
            protocol: u32::MAX,
            connections: u64::MAX,
            packets: u64::MAX,
            bytes: u64::MAX,
            first_seen_ms: u64::MAX,
            last_seen_ms: u64::MAX,
            exporter: v6,
            action: u32::MAX,
        };
        let octets = vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let reference = generated::AggregatedFlow {
            src_ip: octets.clone(),
            dst_ip: octets.clone(),
            dst_port: u32::MAX,
            protocol: u32::MAX,
            connections: u64::MAX,
            packets: u64::MAX,
            bytes: u64::MAX,
            first_seen_ms: u64::MAX,
            last_seen_ms: u64::MAX,
            exporter: octets,
            action: u32::MAX,
        };
        let ours = longest.encode_to_vec();
        assert_eq!(ours.len(), 127);
        assert_eq!(ours, reference.encode_to_vec());
        assert_eq!(longest.encoded_len(), 127);
    }

    #[test]
    fn decodes_what_the_generated_message_encodes() {
        let bytes = reference().encode_to_vec();
        assert_eq!(AggregatedFlow::decode(bytes.as_slice()).unwrap(), flow());
        // Absent addresses (empty `bytes`) and unknown fields.
        let mut sparse = generated::AggregatedFlow {
            dst_port: 53,
            ..Default::default()
        }
        .encode_to_vec();
        sparse.extend_from_slice(&[0x60, 0x05]); // field 12, varint 5
        let decoded = AggregatedFlow::decode(sparse.as_slice()).unwrap();
        assert_eq!(decoded.dst_port, 53);
        assert_eq!(decoded.src_ip, UNSET);
    }

    #[test]
    fn addresses_of_other_lengths_and_short_input_are_refused() {
        let five = generated::AggregatedFlow {
            src_ip: vec![1, 2, 3, 4, 5],
            ..Default::default()
        };
        let error = AggregatedFlow::decode(five.encode_to_vec().as_slice()).unwrap_err();
        assert!(error.to_string().contains("neither 4 nor 16"), "{error}");
        let whole = flow().encode_to_vec();
        assert!(AggregatedFlow::decode(&whole[..5]).is_err());
    }

    #[test]
    fn as_a_field_it_is_what_prost_writes_for_a_message_field() {
        for flow in [flow(), AggregatedFlow::default()] {
            let mut ours = Vec::new();
            flow.encode_field(5, &mut ours);
            let mut reference = Vec::new();
            prost::encoding::message::encode(5, &flow, &mut reference);
            assert_eq!(ours, reference);
        }
    }

    #[test]
    fn a_flow_takes_104_bytes() {
        // Three 17-byte addresses, five u64s and three u32s; generated,
        // the addresses took 96 bytes (three `Bytes`) and the flow 152.
        assert_eq!(std::mem::size_of::<AggregatedFlow>(), 104);
    }

    #[test]
    fn a_batch_of_them_decodes_as_the_generated_batch() {
        let batch = crate::proto::FlowBatch {
            batch_id: "b".into(),
            flows: vec![flow(); 3],
            ..Default::default()
        };
        let decoded = generated::FlowBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.flows, vec![reference(); 3]);
        assert_eq!(decoded.batch_id, "b");
    }
}

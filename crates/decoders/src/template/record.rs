//! One data record's fields, gathered by [`FieldAction`], turned into flows.

use std::net::IpAddr;

use flowlink_flow::{Action, Flow, ip_from_std};

use super::field::{FieldAction, read_uint};
use crate::packet_header::{self, PacketSummary};

/// How the message header anchors relative times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportClock {
    /// NetFlow v9: FIRST/LAST_SWITCHED are sysUptime milliseconds.
    Uptime {
        export_unix_ms: u64,
        sys_uptime_ms: u32,
    },
    /// IPFIX: uptime-relative elements (21/22) count from the exporter's
    /// systemInitTimeMilliseconds (IE 160, from options), when known.
    SystemInit { system_init_ms: Option<u64> },
}

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

fn ntp_to_unix_ms(value: u64) -> u64 {
    let seconds = (value >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let fraction_ms = ((value & 0xffff_ffff) * 1000) >> 32;
    seconds * 1000 + fraction_ms
}

/// The addresses of one family a record carries. Exporters that put IPv4
/// and IPv6 elements in one template (MPLS/SRv6 templates, traffic
/// shapers) fill one family and zero the other; tunnels repeat an element
/// for the outer and the inner header.
#[derive(Debug, Clone, Copy)]
struct AddressPair<const N: usize> {
    src: Option<[u8; N]>,
    dst: Option<[u8; N]>,
    /// Order of the last specified address written (among address
    /// fields), so the pair of the later (inner) header wins between
    /// families (RFC 7011 §8).
    last_specified: Option<u8>,
}

impl<const N: usize> Default for AddressPair<N> {
    fn default() -> Self {
        AddressPair {
            src: None,
            dst: None,
            last_specified: None,
        }
    }
}

impl<const N: usize> AddressPair<N>
where
    IpAddr: From<[u8; N]>,
{
    /// A repeated element takes the later value, except that an
    /// unspecified address (`0.0.0.0`, `::`) never replaces a real one.
    #[inline]
    fn set(&mut self, dst: bool, bytes: &[u8], order: u8) {
        let value = <[u8; N]>::try_from(bytes).unwrap_or([0; N]);
        let specified = value != [0; N];
        let slot = if dst { &mut self.dst } else { &mut self.src };
        if specified || slot.is_none() {
            *slot = Some(value);
        }
        if specified {
            self.last_specified = Some(order);
        }
    }

    #[inline]
    fn complete(&self) -> Option<(IpAddr, IpAddr)> {
        Some((IpAddr::from(self.src?), IpAddr::from(self.dst?)))
    }
}

/// Everything a record may say; absent fields stay `None`.
///
/// Borrows the message for the packet section only, so a record costs no
/// allocation and no drop.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordFields<'a> {
    v4: AddressPair<4>,
    v6: AddressPair<16>,
    /// Address fields applied so far: the order of the next one.
    address_writes: u8,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    tcp_flags: u8,
    icmp_type_code: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    octet_delta: Option<u64>,
    packet_delta: Option<u64>,
    octet_total: Option<u64>,
    packet_total: Option<u64>,
    initiator_octets: Option<u64>,
    initiator_packets: Option<u64>,
    out_octets: Option<u64>,
    out_packets: Option<u64>,
    start_uptime: Option<u32>,
    end_uptime: Option<u32>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    pub sampling_interval: Option<u64>,
    pub sampling_packet_interval: Option<u64>,
    pub sampling_packet_space: Option<u64>,
    pub system_init_ms: Option<u64>,
    reverse_octets: Option<u64>,
    reverse_packets: Option<u64>,
    reverse_tcp_flags: u8,
    /// RFC 7133 packet section: set only in records that carry one.
    section: Option<Section<'a>>,
    /// IE 410 and IE 312 (both unsigned16 in RFC 7133); 0 = not given.
    section_exported_octets: u16,
    data_link_frame_size: u16,
}

impl<'a> RecordFields<'a> {
    /// `bytes` has the width the template gave; `FieldAction::of` already
    /// refused widths an action cannot take.
    #[inline]
    pub fn apply(&mut self, action: FieldAction, bytes: &'a [u8]) {
        use FieldAction::*;
        match action {
            DataLinkFrameSection => self.set_section(SectionKind::DataLinkFrame, bytes),
            IpHeaderPacketSection => self.set_section(SectionKind::IpHeaderPacket, bytes),
            _ => self.apply_value(action, bytes),
        }
    }

    /// Every action but the packet sections (which borrow the message).
    /// Always inlined: in the wasm32 build LLVM kept it out of line, a call
    /// per field that was 11 % of the guest's time (perf with a perf map);
    /// inlined, the v9 and IPFIX components decode 15–25 % faster.
    #[inline(always)]
    fn apply_value(&mut self, action: FieldAction, bytes: &[u8]) {
        use FieldAction::*;
        match action {
            SrcV4 | DstV4 => {
                self.address_writes = self.address_writes.wrapping_add(1);
                self.v4.set(action == DstV4, bytes, self.address_writes);
            }
            SrcV6 | DstV6 => {
                self.address_writes = self.address_writes.wrapping_add(1);
                self.v6.set(action == DstV6, bytes, self.address_writes);
            }
            SrcPort => self.src_port = read_uint(bytes) as u16,
            DstPort => self.dst_port = read_uint(bytes) as u16,
            Protocol => self.protocol = read_uint(bytes) as u8,
            // tcpControlBits is 16 bits in IPFIX; the flags flowlink keeps are the low 8.
            TcpFlags => self.tcp_flags = read_uint(bytes) as u8,
            OctetDelta => self.octet_delta = Some(read_uint(bytes)),
            PacketDelta => self.packet_delta = Some(read_uint(bytes)),
            OctetTotal => self.octet_total = Some(read_uint(bytes)),
            PacketTotal => self.packet_total = Some(read_uint(bytes)),
            InitiatorOctets => self.initiator_octets = Some(read_uint(bytes)),
            InitiatorPackets => self.initiator_packets = Some(read_uint(bytes)),
            OutOctets => self.out_octets = Some(read_uint(bytes)),
            OutPackets => self.out_packets = Some(read_uint(bytes)),
            StartUptime => self.start_uptime = Some(read_uint(bytes) as u32),
            EndUptime => self.end_uptime = Some(read_uint(bytes) as u32),
            StartSeconds => self.start_ms = Some(read_uint(bytes) * 1000),
            EndSeconds => self.end_ms = Some(read_uint(bytes) * 1000),
            StartMillis => self.start_ms = Some(read_uint(bytes)),
            EndMillis => self.end_ms = Some(read_uint(bytes)),
            StartMicros | StartNanos => self.start_ms = Some(ntp_to_unix_ms(read_uint(bytes))),
            EndMicros | EndNanos => self.end_ms = Some(ntp_to_unix_ms(read_uint(bytes))),
            IcmpTypeCode => self.icmp_type_code = Some(read_uint(bytes) as u16),
            IcmpType => self.icmp_type = Some(read_uint(bytes) as u8),
            IcmpCode => self.icmp_code = Some(read_uint(bytes) as u8),
            SamplingInterval => self.sampling_interval = Some(read_uint(bytes)),
            SamplingPacketInterval => self.sampling_packet_interval = Some(read_uint(bytes)),
            SamplingPacketSpace => self.sampling_packet_space = Some(read_uint(bytes)),
            SystemInitMillis => self.system_init_ms = Some(read_uint(bytes)),
            ReverseOctets => self.reverse_octets = Some(read_uint(bytes)),
            ReversePackets => self.reverse_packets = Some(read_uint(bytes)),
            ReverseTcpFlags => self.reverse_tcp_flags = read_uint(bytes) as u8,
            DataLinkFrameSection | IpHeaderPacketSection => {}
            DataLinkFrameSize => self.data_link_frame_size = read_uint(bytes) as u16,
            SectionExportedOctets => self.section_exported_octets = read_uint(bytes) as u16,
            Ignore => {}
        }
    }

    /// 1-in-N packet sampling described by this record (an options record
    /// or a data record carrying its own rate), if any.
    pub fn sampling_rate(&self) -> Option<u32> {
        if let Some(interval) = self.sampling_interval.filter(|i| *i > 0) {
            return Some(interval.min(u64::from(u32::MAX)) as u32);
        }
        // PSAMP systematic count-based: `interval` selected out of every
        // `interval + space` packets.
        let selected = self.sampling_packet_interval.filter(|i| *i > 0)?;
        let space = self.sampling_packet_space.unwrap_or(0);
        Some(((selected + space) / selected).clamp(1, u64::from(u32::MAX)) as u32)
    }

    /// RFC 7133 packet sections (PSAMP packet reports, e.g. softflowd's
    /// `-v psamp`): a record without an address pair of its own that
    /// carries the packet is described by the packet's headers, as if it
    /// had carried their elements — one packet of the IP header's length,
    /// unless the record counts packets or octets itself. A section the
    /// walker cannot read is the record's reject.
    /// Copies a packet section out of the message. Out of line, so the
    /// allocation does not keep `apply` from being inlined into the loop
    /// over every field of every record.
    #[cold]
    #[inline(never)]
    fn set_section(&mut self, kind: SectionKind, bytes: &'a [u8]) {
        self.section = Some(Section { kind, bytes });
    }

    // Out of the hot path: most records carry no section.
    #[cold]
    #[inline(never)]
    fn fill_from_section(&mut self) -> Result<(), &'static str> {
        use FieldAction::*;
        if self.addresses().is_some() {
            return Ok(());
        }
        let Some(section) = self.section.take() else {
            return Ok(());
        };
        let given = |v: u16| (v > 0).then_some(u64::from(v));
        let packet = section.decode(
            given(self.section_exported_octets),
            given(self.data_link_frame_size),
        )?;
        for (address, v4, v6) in [(packet.src, SrcV4, SrcV6), (packet.dst, DstV4, DstV6)] {
            match address {
                IpAddr::V4(a) => self.apply_value(v4, &a.octets()),
                IpAddr::V6(a) => self.apply_value(v6, &a.octets()),
            }
        }
        self.apply_value(SrcPort, &packet.src_port.to_be_bytes());
        self.apply_value(DstPort, &packet.dst_port.to_be_bytes());
        self.apply_value(Protocol, &[packet.protocol]);
        self.apply_value(TcpFlags, &[packet.tcp_flags]);
        if matches!(packet.protocol, 1 | 58) {
            self.apply_value(IcmpTypeCode, &[packet.icmp_type, packet.icmp_code]);
            self.apply_value(IcmpType, &[packet.icmp_type]);
            self.apply_value(IcmpCode, &[packet.icmp_code]);
        }
        let packet_counters = [
            self.packet_delta,
            self.packet_total,
            self.initiator_packets,
            self.out_packets,
        ];
        if packet_counters.iter().all(Option::is_none) {
            self.apply_value(PacketDelta, &[1]);
        }
        let octet_counters = [
            self.octet_delta,
            self.octet_total,
            self.initiator_octets,
            self.out_octets,
        ];
        if octet_counters.iter().all(Option::is_none) {
            self.apply_value(OctetDelta, &packet.ip_length.to_be_bytes());
        }
        Ok(())
    }

    /// The flows of this record: one, or with RFC 5103 reverse counters one
    /// per direction that saw packets. `Err` says why there is none.
    /// By reference: a record is a few hundred bytes, and moving it costs
    /// a copy per record (in wasm, a call to memcpy).
    pub fn into_flows(
        &mut self,
        clock: ExportClock,
        sampling_interval: u32,
        biflow: bool,
        out: &mut Vec<Flow>,
    ) -> Result<(), &'static str> {
        if self.section.is_some() {
            self.fill_from_section()?;
        }
        let Some((src, dst)) = self.addresses() else {
            return Err("record has no source and destination IP address");
        };
        let packets = self
            .packet_delta
            .or(self.packet_total)
            .or(self.initiator_packets)
            .or(self.out_packets)
            .unwrap_or(0);
        let bytes = self
            .octet_delta
            .or(self.octet_total)
            .or(self.initiator_octets)
            .or(self.out_octets)
            .unwrap_or(0);
        let (start_ms, end_ms) = self.times(clock);
        let (icmp_type, icmp_code) = self.icmp();
        let forward = Flow {
            src: ip_from_std(src),
            dst: ip_from_std(dst),
            src_port: self.src_port,
            dst_port: self.dst_port,
            protocol: self.protocol,
            packets,
            bytes,
            start_ms,
            end_ms,
            sampling_interval,
            tcp_flags: self.tcp_flags,
            icmp_type,
            icmp_code,
            icmp_unknown: false,
            action: Action::Unknown,
        };
        if !biflow {
            out.push(forward);
            return Ok(());
        }
        if packets > 0 || bytes > 0 {
            out.push(forward);
        }
        let reverse_packets = self.reverse_packets.unwrap_or(0);
        let reverse_bytes = self.reverse_octets.unwrap_or(0);
        if reverse_packets > 0 || reverse_bytes > 0 {
            out.push(Flow {
                src: forward.dst,
                dst: forward.src,
                src_port: forward.dst_port,
                dst_port: forward.src_port,
                packets: reverse_packets,
                bytes: reverse_bytes,
                tcp_flags: self.reverse_tcp_flags,
                ..forward
            });
        }
        Ok(())
    }

    /// The address pair of the record: the only complete one; of two, the
    /// one that is not all-unspecified; of two real ones, the one written
    /// later — the same last-occurrence rule as ports and protocol, so
    /// addresses and ports come from the same (inner) header.
    #[inline]
    fn addresses(&self) -> Option<(IpAddr, IpAddr)> {
        // The usual record carries one family: no comparison needed.
        if self.v6.last_specified.is_none() && self.v6.src.is_none() {
            return self.v4.complete();
        }
        if self.v4.last_specified.is_none() && self.v4.src.is_none() {
            return self.v6.complete();
        }
        match (self.v4.complete(), self.v6.complete()) {
            (Some(v4), None) => Some(v4),
            (None, Some(v6)) => Some(v6),
            (None, None) => None,
            (Some(v4), Some(v6)) => {
                let v4_later = match (self.v4.last_specified, self.v6.last_specified) {
                    (Some(a), Some(b)) => a > b,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    // Both all-zero: v6 was the newer format's choice.
                    (None, None) => false,
                };
                Some(if v4_later { v4 } else { v6 })
            }
        }
    }

    fn times(&self, clock: ExportClock) -> (u64, u64) {
        let relative = |uptime: Option<u32>| -> Option<u64> {
            let value = uptime?;
            match clock {
                ExportClock::Uptime {
                    export_unix_ms,
                    sys_uptime_ms,
                } => Some(crate::time::uptime_to_unix_ms(
                    export_unix_ms,
                    sys_uptime_ms,
                    value,
                )),
                ExportClock::SystemInit { system_init_ms } => {
                    Some(system_init_ms? + u64::from(value))
                }
            }
        };
        let start = self
            .start_ms
            .or_else(|| relative(self.start_uptime))
            .unwrap_or(0);
        let end = self
            .end_ms
            .or_else(|| relative(self.end_uptime))
            .unwrap_or(0);
        (start, end)
    }

    fn icmp(&self) -> (u8, u8) {
        if !matches!(self.protocol, 1 | 58) {
            return (0, 0);
        }
        if let Some(type_code) = self.icmp_type_code {
            return ((type_code >> 8) as u8, type_code as u8);
        }
        if self.icmp_type.is_some() || self.icmp_code.is_some() {
            return (self.icmp_type.unwrap_or(0), self.icmp_code.unwrap_or(0));
        }
        crate::icmp::icmp_from_ports(self.src_port, self.dst_port)
    }
}

/// Which RFC 7133 packet section a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    /// dataLinkFrameSection (IE 315): the frame from its MAC header on.
    DataLinkFrame,
    /// ipHeaderPacketSection (IE 313): the packet from its IP header on.
    IpHeaderPacket,
}

/// A record's packet section, borrowed from the message.
#[derive(Debug, Clone, Copy)]
struct Section<'a> {
    kind: SectionKind,
    bytes: &'a [u8],
}

impl Section<'_> {
    /// The packet in the section. Only the real octets are walked:
    /// `exported` (sectionExportedOctets, IE 410) and, for a frame,
    /// `frame_size` (dataLinkFrameSize, IE 312) bound them, since
    /// exporters pad fixed-length sections (softflowd: 1390 bytes of
    /// zeros after the frame). 0 is taken as "not given".
    fn decode(
        &self,
        exported: Option<u64>,
        frame_size: Option<u64>,
    ) -> Result<PacketSummary, &'static str> {
        let frame_size = frame_size.filter(|_| self.kind == SectionKind::DataLinkFrame);
        let len = [exported, frame_size]
            .into_iter()
            .flatten()
            .filter(|bound| *bound > 0)
            .fold(self.bytes.len(), |len, bound| {
                len.min(usize::try_from(bound).unwrap_or(usize::MAX))
            });
        let real = &self.bytes[..len];
        let walked = match self.kind {
            SectionKind::DataLinkFrame => packet_header::from_ethernet(real),
            SectionKind::IpHeaderPacket => packet_header::from_ip(real),
        };
        walked.map_err(|why| section_reject(self.kind, why))
    }
}

/// Defines `section_reject`: the reject of a section the walker cannot
/// read, `"<element name>: <walker's reason>"`. Rejects here are
/// `&'static str`, so the messages are put together at compile time from
/// the walker's list of reasons.
macro_rules! section_rejects {
    ($($reason:literal),* $(,)?) => {
        fn section_reject(kind: SectionKind, why: &'static str) -> &'static str {
            match (kind, why) {
                $((SectionKind::DataLinkFrame, $reason) => {
                    concat!("dataLinkFrameSection: ", $reason)
                })*
                $((SectionKind::IpHeaderPacket, $reason) => {
                    concat!("ipHeaderPacketSection: ", $reason)
                })*
                (SectionKind::DataLinkFrame, _) => "dataLinkFrameSection: cannot be decoded",
                (SectionKind::IpHeaderPacket, _) => "ipHeaderPacketSection: cannot be decoded",
            }
        }
    };
}
crate::packet_header::walker_reasons!(section_rejects);

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_pair(src: &str, dst: &str) -> AddressPair<4> {
        let octets = |a: &str| a.parse::<std::net::Ipv4Addr>().unwrap().octets();
        AddressPair {
            src: Some(octets(src)),
            dst: Some(octets(dst)),
            last_specified: Some(0),
        }
    }

    /// A record as a template lays it out: (action, bytes) in field order.
    fn record<'a>(fields: &[(FieldAction, &'a [u8])]) -> RecordFields<'a> {
        let mut r = RecordFields::default();
        for (action, bytes) in fields {
            r.apply(*action, bytes);
        }
        r
    }

    const V4_A: [u8; 4] = [192, 0, 2, 1];
    const V4_B: [u8; 4] = [198, 51, 100, 7];
    const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn addresses(r: &RecordFields) -> (String, String) {
        let (s, d) = r.addresses().expect("an address pair");
        (s.to_string(), d.to_string())
    }

    #[test]
    fn unspecified_family_never_replaces_the_real_one() {
        use FieldAction::*;
        // IPv4 real, IPv6 pair all-zero and written last (Cisco MPLS templates).
        let r = record(&[
            (SrcV4, &V4_A),
            (DstV4, &V4_B),
            (SrcV6, &[0; 16]),
            (DstV6, &[0; 16]),
        ]);
        assert_eq!(addresses(&r), ("192.0.2.1".into(), "198.51.100.7".into()));
        // IPv6 real, IPv4 pair all-zero and written last.
        let r = record(&[
            (SrcV6, &V6_A),
            (DstV6, &V6_B),
            (SrcV4, &[0; 4]),
            (DstV4, &[0; 4]),
        ]);
        assert_eq!(addresses(&r), ("2001:db8::1".into(), "2001:db8::2".into()));
    }

    #[test]
    fn two_real_families_take_the_later_header_like_ports() {
        use FieldAction::*;
        // Outer IPv6, inner IPv4 (e.g. SRv6 carrying IPv4): the later pair.
        let r = record(&[
            (SrcV6, &V6_A),
            (DstV6, &V6_B),
            (SrcV4, &V4_A),
            (DstV4, &V4_B),
        ]);
        assert_eq!(addresses(&r).0, "192.0.2.1");
        let r = record(&[
            (SrcV4, &V4_A),
            (DstV4, &V4_B),
            (SrcV6, &V6_A),
            (DstV6, &V6_B),
        ]);
        assert_eq!(addresses(&r).0, "2001:db8::1");
        // A repeated IPv4 element: the inner (later) one, unless it is zero.
        let r = record(&[
            (SrcV4, &V4_A),
            (DstV4, &V4_B),
            (SrcV4, &V4_B),
            (DstV4, &V4_A),
        ]);
        assert_eq!(addresses(&r), ("198.51.100.7".into(), "192.0.2.1".into()));
        let r = record(&[
            (SrcV4, &V4_A),
            (DstV4, &V4_B),
            (SrcV4, &[0; 4]),
            (DstV4, &[0; 4]),
        ]);
        assert_eq!(addresses(&r), ("192.0.2.1".into(), "198.51.100.7".into()));
    }

    #[test]
    fn all_zero_addresses_are_kept_when_nothing_else_is_there() {
        use FieldAction::*;
        let r = record(&[(SrcV4, &[0; 4]), (DstV4, &[0; 4])]);
        assert_eq!(addresses(&r), ("0.0.0.0".into(), "0.0.0.0".into()));
        assert!(record(&[(SrcV4, &V4_A)]).addresses().is_none());
    }

    #[test]
    fn ntp_timestamps_convert_to_unix_ms() {
        // 2024-05-01T00:00:00.5Z
        let unix = 1_714_521_600u64;
        let ntp = (unix + NTP_UNIX_OFFSET) << 32 | 0x8000_0000;
        assert_eq!(ntp_to_unix_ms(ntp), unix * 1000 + 500);
    }

    #[test]
    fn counters_prefer_delta_then_total_then_initiator() {
        let mut r = RecordFields {
            v4: v4_pair("10.0.0.1", "10.0.0.2"),
            initiator_octets: Some(7),
            octet_total: Some(9),
            ..Default::default()
        };
        let clock = ExportClock::SystemInit {
            system_init_ms: None,
        };
        let mut out = Vec::new();
        r.into_flows(clock, 1, false, &mut out).unwrap();
        assert_eq!(out[0].bytes, 9);
        r.octet_total = None;
        r.into_flows(clock, 1, false, &mut out).unwrap();
        assert_eq!(out[1].bytes, 7);
    }

    #[test]
    fn biflow_emits_each_direction_that_saw_traffic() {
        let mut r = RecordFields {
            v4: v4_pair("10.0.0.1", "10.0.0.2"),
            src_port: 1000,
            dst_port: 53,
            protocol: 17,
            packet_delta: Some(0),
            octet_delta: Some(0),
            reverse_packets: Some(2),
            reverse_octets: Some(200),
            ..Default::default()
        };
        let mut out = Vec::new();
        r.into_flows(
            ExportClock::SystemInit {
                system_init_ms: Some(0),
            },
            1,
            true,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1, "the silent forward direction is not a flow");
        assert_eq!(
            (out[0].src_port, out[0].dst_port, out[0].packets),
            (53, 1000, 2)
        );
    }
}

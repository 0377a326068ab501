//! One data record's fields, gathered by [`FieldAction`], turned into flows.

use std::net::IpAddr;

use flowlink_plugin_sdk::{Action, Flow, ip_from_std};

use super::field::{FieldAction, read_uint};

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

/// Everything a record may say; absent fields stay `None`.
#[derive(Debug, Default, Clone)]
pub struct RecordFields {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
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
}

impl RecordFields {
    /// `bytes` has the width the template gave; `FieldAction::of` already
    /// refused widths an action cannot take.
    #[inline]
    pub fn apply(&mut self, action: FieldAction, bytes: &[u8]) {
        use FieldAction::*;
        match action {
            SrcV4 => self.src = Some(IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default())),
            DstV4 => self.dst = Some(IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default())),
            SrcV6 => {
                self.src = Some(IpAddr::from(
                    <[u8; 16]>::try_from(bytes).unwrap_or_default(),
                ))
            }
            DstV6 => {
                self.dst = Some(IpAddr::from(
                    <[u8; 16]>::try_from(bytes).unwrap_or_default(),
                ))
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

    /// The flows of this record: one, or with RFC 5103 reverse counters one
    /// per direction that saw packets. `Err` says why there is none.
    pub fn into_flows(
        self,
        clock: ExportClock,
        sampling_interval: u32,
        biflow: bool,
        out: &mut Vec<Flow>,
    ) -> Result<(), &'static str> {
        let (Some(src), Some(dst)) = (self.src, self.dst) else {
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

    fn times(&self, clock: ExportClock) -> (u64, u64) {
        let relative = |uptime: Option<u32>| -> Option<u64> {
            let value = uptime?;
            match clock {
                ExportClock::Uptime {
                    export_unix_ms,
                    sys_uptime_ms,
                } => Some(crate::netflow::uptime_to_unix_ms(
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
        // pmacct puts type * 256 + code in the destination port.
        ((self.dst_port >> 8) as u8, self.dst_port as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            src: Some("10.0.0.1".parse().unwrap()),
            dst: Some("10.0.0.2".parse().unwrap()),
            initiator_octets: Some(7),
            octet_total: Some(9),
            ..Default::default()
        };
        let clock = ExportClock::SystemInit {
            system_init_ms: None,
        };
        let mut out = Vec::new();
        r.clone().into_flows(clock, 1, false, &mut out).unwrap();
        assert_eq!(out[0].bytes, 9);
        r.octet_total = None;
        r.into_flows(clock, 1, false, &mut out).unwrap();
        assert_eq!(out[1].bytes, 7);
    }

    #[test]
    fn biflow_emits_each_direction_that_saw_traffic() {
        let r = RecordFields {
            src: Some("10.0.0.1".parse().unwrap()),
            dst: Some("10.0.0.2".parse().unwrap()),
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

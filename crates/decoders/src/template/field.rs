//! What each information element of a template means to a flow record.
//! Resolved once when a template is learned, so decoding a record is a walk
//! over pre-classified fields, not a lookup per field.

/// IANA private enterprise number of the RFC 5103 reverse elements.
pub const REVERSE_PEN: u32 = 29305;
/// A field length of 65535 marks a variable-length field (RFC 7011 §7).
pub const VARIABLE_LENGTH: u16 = 65535;

/// A template field as the exporter described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub id: u16,
    /// 0 for IANA elements.
    pub enterprise: u32,
    pub length: u16,
}

/// What the decoder does with a field's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAction {
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Protocol,
    TcpFlags,
    OctetDelta,
    PacketDelta,
    OctetTotal,
    PacketTotal,
    /// Firewalls (e.g. Cisco ASA) send initiator/responder counters instead.
    InitiatorOctets,
    InitiatorPackets,
    /// v9 OUT_BYTES / OUT_PKTS: egress counters, used when nothing else is there.
    OutOctets,
    OutPackets,
    /// sysUptime-relative milliseconds (v9 FIRST/LAST_SWITCHED, IPFIX 22/21).
    StartUptime,
    EndUptime,
    StartSeconds,
    EndSeconds,
    StartMillis,
    EndMillis,
    /// NTP-format timestamps (RFC 7011 §6.1.9/10).
    StartMicros,
    EndMicros,
    StartNanos,
    EndNanos,
    /// type * 256 + code.
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    SamplingInterval,
    SamplingPacketInterval,
    SamplingPacketSpace,
    SystemInitMillis,
    ReverseOctets,
    ReversePackets,
    ReverseTcpFlags,
    /// PSAMP packet sections (RFC 5477, RFC 7133), any length (variable
    /// length too): the leading octets of the observed frame (IE 315,
    /// from its MAC header) or of its IP packet (IE 313).
    DataLinkFrameSection,
    IpHeaderPacketSection,
    /// IE 312: the length of the whole frame a section was taken from.
    DataLinkFrameSize,
    /// IE 410: how many of a section's octets are real; the rest is padding.
    SectionExportedOctets,
    Ignore,
}

impl FieldAction {
    /// Classifies a field. A known element at a width it cannot have (an
    /// IPv4 address of 3 bytes) is ignored rather than misread.
    pub fn of(spec: FieldSpec) -> FieldAction {
        use FieldAction::*;
        let len = spec.length;
        let unsigned = (1..=8).contains(&len);
        let action = match (spec.enterprise, spec.id) {
            (0, 8) if len == 4 => SrcV4,
            (0, 12) if len == 4 => DstV4,
            (0, 27) if len == 16 => SrcV6,
            (0, 28) if len == 16 => DstV6,
            (0, 7) => SrcPort,
            (0, 11) => DstPort,
            (0, 4) => Protocol,
            (0, 6) => TcpFlags,
            (0, 1) => OctetDelta,
            (0, 2) => PacketDelta,
            (0, 85) => OctetTotal,
            (0, 86) => PacketTotal,
            (0, 231) => InitiatorOctets,
            (0, 298) => InitiatorPackets,
            (0, 23) => OutOctets,
            (0, 24) => OutPackets,
            (0, 22) => StartUptime,
            (0, 21) => EndUptime,
            (0, 150) => StartSeconds,
            (0, 151) => EndSeconds,
            (0, 152) => StartMillis,
            (0, 153) => EndMillis,
            (0, 154) if len == 8 => StartMicros,
            (0, 155) if len == 8 => EndMicros,
            (0, 156) if len == 8 => StartNanos,
            (0, 157) if len == 8 => EndNanos,
            (0, 32) | (0, 139) => IcmpTypeCode,
            (0, 176) | (0, 178) => IcmpType,
            (0, 177) | (0, 179) => IcmpCode,
            (0, 34) | (0, 50) => SamplingInterval,
            (0, 305) => SamplingPacketInterval,
            (0, 306) => SamplingPacketSpace,
            (0, 160) => SystemInitMillis,
            (REVERSE_PEN, 1) | (REVERSE_PEN, 85) => ReverseOctets,
            (REVERSE_PEN, 2) | (REVERSE_PEN, 86) => ReversePackets,
            (REVERSE_PEN, 6) => ReverseTcpFlags,
            (0, 315) => DataLinkFrameSection,
            (0, 313) => IpHeaderPacketSection,
            (0, 312) => DataLinkFrameSize,
            (0, 410) => SectionExportedOctets,
            _ => Ignore,
        };
        let needs_unsigned = !matches!(
            action,
            SrcV4 | DstV4 | SrcV6 | DstV6 | DataLinkFrameSection | IpHeaderPacketSection | Ignore
        );
        if needs_unsigned && !unsigned {
            Ignore
        } else {
            action
        }
    }
}

/// A big-endian unsigned integer of 1 to 8 bytes (reduced-size encoding,
/// RFC 7011 §6.2). Callers guarantee the width.
#[inline]
pub fn read_uint(bytes: &[u8]) -> u64 {
    match *bytes {
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => bytes
            .iter()
            .fold(0u64, |value, &b| value << 8 | u64::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(enterprise: u32, id: u16, length: u16) -> FieldSpec {
        FieldSpec {
            id,
            enterprise,
            length,
        }
    }

    #[test]
    fn classifies_by_enterprise_and_width() {
        assert_eq!(FieldAction::of(spec(0, 1, 4)), FieldAction::OctetDelta);
        assert_eq!(
            FieldAction::of(spec(REVERSE_PEN, 1, 8)),
            FieldAction::ReverseOctets
        );
        assert_eq!(
            FieldAction::of(spec(9, 1, 8)),
            FieldAction::Ignore,
            "other enterprises"
        );
        assert_eq!(
            FieldAction::of(spec(0, 8, 3)),
            FieldAction::Ignore,
            "bad address width"
        );
        assert_eq!(
            FieldAction::of(spec(0, 1, 16)),
            FieldAction::Ignore,
            "counter wider than u64"
        );
        assert_eq!(
            FieldAction::of(spec(0, 1, VARIABLE_LENGTH)),
            FieldAction::Ignore
        );
    }

    #[test]
    fn packet_sections_take_any_length_their_sizes_are_unsigned() {
        for len in [0, 1, 128, 1390, VARIABLE_LENGTH] {
            assert_eq!(
                FieldAction::of(spec(0, 315, len)),
                FieldAction::DataLinkFrameSection
            );
            assert_eq!(
                FieldAction::of(spec(0, 313, len)),
                FieldAction::IpHeaderPacketSection
            );
        }
        assert_eq!(
            FieldAction::of(spec(0, 410, 2)),
            FieldAction::SectionExportedOctets
        );
        assert_eq!(
            FieldAction::of(spec(0, 312, 4)),
            FieldAction::DataLinkFrameSize
        );
        assert_eq!(
            FieldAction::of(spec(0, 410, VARIABLE_LENGTH)),
            FieldAction::Ignore
        );
        assert_eq!(
            FieldAction::of(spec(0, 316, VARIABLE_LENGTH)),
            FieldAction::Ignore,
            "mplsLabelStackSection"
        );
        assert_eq!(
            FieldAction::of(spec(9, 315, 64)),
            FieldAction::Ignore,
            "other enterprises"
        );
    }

    #[test]
    fn reads_reduced_size_integers() {
        assert_eq!(read_uint(&[0x12]), 0x12);
        assert_eq!(read_uint(&[0x01, 0x02, 0x03]), 0x010203);
        assert_eq!(read_uint(&[0xff; 8]), u64::MAX);
    }
}

//! Packed records the host has checked, as they travel from a parser
//! worker to the aggregator: the plugin's output bytes, moved, not turned
//! into [`Flow`] values (96 bytes each, written once and read once more).
//! The host's side of the format; a plugin never needs it.

use crate::Flow;
use crate::packed::{PACKED_FLOW_LEN, UnpackError, pack, unpack};

/// One packed record.
pub type PackedRecord = [u8; PACKED_FLOW_LEN];

/// Records whose enumerated bytes (families, action) are known valid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackedFlows {
    bytes: Vec<u8>,
}

impl PackedFlows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether every record of `bytes` (whole records) is valid.
    fn check(bytes: &[u8]) -> Result<(), UnpackError> {
        let (records, rest) = bytes.as_chunks::<PACKED_FLOW_LEN>();
        assert!(rest.is_empty(), "packed records come in whole records");
        for r in records {
            for family in [r[0], r[1]] {
                if family != 4 && family != 6 {
                    return Err(UnpackError::Family(family));
                }
            }
            if r[6] > 2 {
                return Err(UnpackError::Action(r[6]));
            }
        }
        Ok(())
    }

    /// Takes a plugin's output whole if every record is valid; else
    /// gives it back, with the first fault.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, (UnpackError, Vec<u8>)> {
        match Self::check(&bytes) {
            Ok(()) => Ok(PackedFlows { bytes }),
            Err(e) => Err((e, bytes)),
        }
    }

    /// Appends records after checking them; nothing is appended if one is
    /// invalid.
    pub fn extend_checked(&mut self, bytes: &[u8]) -> Result<(), UnpackError> {
        Self::check(bytes)?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    pub fn extend_from(&mut self, records: &[PackedRecord]) {
        self.bytes.extend_from_slice(records.as_flattened());
    }

    pub fn push(&mut self, flow: &Flow) {
        pack(flow, &mut self.bytes);
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / PACKED_FLOW_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes held, for memory budgets.
    pub fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn records(&self) -> &[PackedRecord] {
        self.bytes.as_chunks().0
    }

    /// The records as [`Flow`] values.
    pub fn to_flows(&self) -> Vec<Flow> {
        self.records()
            .iter()
            .map(|r| FlowRef(r).to_flow())
            .collect()
    }
}

impl FromIterator<Flow> for PackedFlows {
    fn from_iter<I: IntoIterator<Item = Flow>>(flows: I) -> Self {
        let mut packed = PackedFlows::new();
        flows.into_iter().for_each(|f| packed.push(&f));
        packed
    }
}

/// A checked record's fields, read in place.
#[derive(Clone, Copy)]
pub struct FlowRef<'a>(&'a PackedRecord);

impl<'a> FlowRef<'a> {
    /// `record` must come from a [`PackedFlows`] (checked).
    #[inline]
    pub fn new(record: &'a PackedRecord) -> Self {
        FlowRef(record)
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }

    #[inline]
    fn u64_at(&self, at: usize) -> u64 {
        let bytes: [u8; 8] = self.0[at..at + 8].try_into().expect("8 bytes");
        u64::from_le_bytes(bytes)
    }

    /// Both addresses, when both are IPv4 (the common case).
    #[inline]
    pub fn v4_pair(&self) -> Option<(u32, u32)> {
        if self.0[0] != 4 || self.0[1] != 4 {
            return None;
        }
        let at = |i: usize| u32::from_be_bytes(self.0[i..i + 4].try_into().expect("4 bytes"));
        Some((at(16), at(32)))
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.0[2]
    }

    #[inline]
    pub fn tcp_flags(&self) -> u8 {
        self.0[3]
    }

    #[inline]
    pub fn icmp_type(&self) -> u8 {
        self.0[4]
    }

    #[inline]
    pub fn icmp_code(&self) -> u8 {
        self.0[5]
    }

    /// The protobuf / `Action` code: 0 unknown, 1 accept, 2 reject.
    #[inline]
    pub fn action_code(&self) -> u8 {
        self.0[6]
    }

    #[inline]
    pub fn icmp_unknown(&self) -> bool {
        self.0[7] & 1 != 0
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(8)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(10)
    }

    #[inline]
    pub fn sampling_interval(&self) -> u32 {
        u32::from_le_bytes(self.0[12..16].try_into().expect("4 bytes"))
    }

    #[inline]
    pub fn packets(&self) -> u64 {
        self.u64_at(48)
    }

    #[inline]
    pub fn bytes(&self) -> u64 {
        self.u64_at(56)
    }

    #[inline]
    pub fn start_ms(&self) -> u64 {
        self.u64_at(64)
    }

    #[inline]
    pub fn end_ms(&self) -> u64 {
        self.u64_at(72)
    }

    #[inline]
    pub fn to_flow(&self) -> Flow {
        unpack(self.0).expect("a checked record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::sample_flows;

    #[test]
    fn reads_every_field_in_place() {
        let flows = sample_flows();
        let packed: PackedFlows = flows.iter().copied().collect();
        assert_eq!(packed.len(), 3);
        assert_eq!(packed.to_flows(), flows);
        let r = FlowRef::new(&packed.records()[0]);
        assert_eq!(r.v4_pair(), None, "a family mix is not a v4 pair");
        assert_eq!(
            (r.protocol(), r.src_port(), r.dst_port(), r.tcp_flags()),
            (6, 40000, 443, 0x1b)
        );
        assert_eq!((r.packets(), r.bytes()), (u64::MAX, 1 << 40));
        assert_eq!(
            (r.start_ms(), r.end_ms()),
            (1_700_000_000_000, 1_700_000_000_999)
        );
        assert_eq!((r.sampling_interval(), r.action_code()), (1000, 2));
        assert!(!r.icmp_unknown());
        let r = FlowRef::new(&packed.records()[1]);
        assert_eq!((r.icmp_type(), r.icmp_code(), r.action_code()), (128, 3, 1));
        let r = FlowRef::new(&packed.records()[2]);
        assert_eq!(r.v4_pair(), Some((0, 0)));
        assert!(r.icmp_unknown());
    }

    /// One record written byte by byte from the table in `wit/parser.wit`,
    /// not by `pack`.
    #[test]
    fn reads_a_record_laid_out_as_the_contract_says() {
        let mut r = [0u8; PACKED_FLOW_LEN];
        r[0] = 4;
        r[1] = 4;
        r[2] = 17;
        r[3] = 0x12;
        r[4] = 3;
        r[5] = 1;
        r[6] = 1;
        r[7] = 1;
        r[8..10].copy_from_slice(&[0x39, 0x30]); // 12345, little-endian
        r[10..12].copy_from_slice(&[0x35, 0x00]); // 53
        r[12..16].copy_from_slice(&[0x00, 0x04, 0x00, 0x00]); // 1024
        r[16..20].copy_from_slice(&[10, 1, 2, 3]);
        r[32..36].copy_from_slice(&[192, 0, 2, 53]);
        r[48..56].copy_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        r[56..64].copy_from_slice(&[0x00, 0x01, 0, 0, 0, 0, 0, 0]); // 256
        r[64..72].copy_from_slice(&[0xe8, 0x03, 0, 0, 0, 0, 0, 0]); // 1000
        r[72..80].copy_from_slice(&[0xd0, 0x07, 0, 0, 0, 0, 0, 0]); // 2000
        let packed = PackedFlows::from_bytes(r.to_vec()).unwrap();
        let f = FlowRef::new(&packed.records()[0]);
        assert_eq!(f.v4_pair(), Some((0x0a01_0203, 0xc000_0235)));
        assert_eq!((f.protocol(), f.tcp_flags()), (17, 0x12));
        assert_eq!((f.icmp_type(), f.icmp_code(), f.action_code()), (3, 1, 1));
        assert!(f.icmp_unknown());
        assert_eq!(
            (f.src_port(), f.dst_port(), f.sampling_interval()),
            (12345, 53, 1024)
        );
        assert_eq!((f.packets(), f.bytes()), (7, 256));
        assert_eq!((f.start_ms(), f.end_ms()), (1000, 2000));
    }

    #[test]
    fn refuses_a_record_with_a_bad_family_or_action() {
        let packed: PackedFlows = sample_flows().into_iter().collect();
        let mut bytes = packed.records().as_flattened().to_vec();
        bytes[PACKED_FLOW_LEN + 1] = 5;
        assert_eq!(
            PackedFlows::from_bytes(bytes.clone()).map_err(|(e, _)| e),
            Err(UnpackError::Family(5))
        );
        let mut more = PackedFlows::new();
        assert!(more.extend_checked(&bytes).is_err());
        assert!(more.is_empty(), "nothing of a refused run is kept");
        bytes[PACKED_FLOW_LEN + 1] = 4;
        bytes[6] = 3;
        let refused = PackedFlows::from_bytes(bytes.clone());
        assert_eq!(
            refused,
            Err((UnpackError::Action(3), bytes)),
            "given back whole"
        );
    }
}

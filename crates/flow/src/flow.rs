//! The values a parser produces: plain Rust, independent of the wire.

/// An IP address as the WIT carries it: v4 in host order
/// (10.0.0.1 = 0x0a000001), v6 as high and low 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpAddr {
    V4(u32),
    V6((u64, u64)),
}

/// Firewall verdict where the format carries one (VPC flow logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    #[default]
    Unknown,
    Accept,
    Reject,
}

/// One unidirectional flow record, as the exporter reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// As counted by the exporter, before any sampling correction: the
    /// host's aggregator scales by `sampling_interval`, once.
    pub packets: u64,
    pub bytes: u64,
    /// Unix milliseconds; 0 = unknown.
    pub start_ms: u64,
    pub end_ms: u64,
    /// 1-in-N packet sampling; 1 = unsampled (0 is taken as 1).
    pub sampling_interval: u32,
    /// Cumulative TCP flags; 0 when absent.
    pub tcp_flags: u8,
    /// ICMP type and code for protocols 1 and 58; 0 otherwise.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The format carries no ICMP type/code (VPC flow logs, some NetFlow v5
    /// exporters): `icmp_type` 0 then means "unknown", not echo reply, and
    /// the aggregator leaves the record's direction as reported.
    pub icmp_unknown: bool,
    pub action: Action,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The exporter (UDP/TCP peer); 0.0.0.0 where there is none.
    pub exporter: IpAddr,
    pub port: u16,
    /// When the host received the message, Unix milliseconds.
    pub received_ms: u64,
}

/// One record of a message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the record (or line) within its message.
    pub index: u32,
    pub reason: String,
}

/// What one message produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub flows: Vec<Flow>,
    pub rejected: Vec<Rejected>,
    /// Records deliberately left out (neither flows nor errors), for the
    /// host's `records_skipped` counter.
    pub skipped: u32,
}

impl Batch {
    /// Counts one record that is deliberately not a flow (a VPC NODATA
    /// record, a keep-alive): not an error, but worth a counter.
    pub fn skip(&mut self) {
        self.skipped = self.skipped.saturating_add(1);
    }

    /// Records one undecodable record of the message.
    pub fn reject(&mut self, index: u32, reason: impl Into<String>) {
        self.rejected.push(Rejected {
            index,
            reason: reason.into(),
        });
    }
}

impl Default for Flow {
    /// An all-zero IPv4 record, unsampled: a base for `..Default::default()`.
    fn default() -> Self {
        Flow {
            src: IpAddr::V4(0),
            dst: IpAddr::V4(0),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            packets: 0,
            bytes: 0,
            start_ms: 0,
            end_ms: 0,
            sampling_interval: 1,
            tcp_flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            icmp_unknown: false,
            action: Action::Unknown,
        }
    }
}

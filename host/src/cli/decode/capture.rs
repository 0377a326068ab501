//! Messages from files: UDP payloads of a pcap/pcapng capture, or a raw
//! datagram file (the whole file is one message).
//!
//! A capture's link type is resolved once per file (pcap) or per interface
//! (pcapng) into a `LinkLayer`; each frame is then stripped to its IP
//! packet and sliced by etherparse down to the UDP payload. A frame that
//! gives no datagram is counted under a `SkipReason`.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result};
use etherparse::err::Layer;
use etherparse::err::packet::SliceError;
use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError, TsResolution};

pub struct CaptureMessage {
    pub exporter: SocketAddr,
    pub received_ms: Option<u64>,
    pub payload: Vec<u8>,
}

/// What one file gave.
#[derive(Default)]
pub struct FileMessages {
    pub messages: Vec<CaptureMessage>,
    /// Frames in a capture, decoded or skipped; 0 for a raw datagram file.
    pub frames: u64,
    /// Frames that gave no message, counted by reason, in order of first sight.
    pub skipped: Vec<(SkipReason, u64)>,
}

impl FileMessages {
    fn frame(&mut self, outcome: Result<CaptureMessage, SkipReason>) {
        self.frames += 1;
        match outcome {
            Ok(message) => self.messages.push(message),
            Err(reason) => match self.skipped.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => self.skipped.push((reason, 1)),
            },
        }
    }
}

/// Why a captured frame gave no UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    LinkType(u32),
    /// A link-layer header we strip ourselves was cut short.
    TruncatedLink(&'static str),
    /// etherparse found a header or payload shorter than it claims.
    Truncated(Layer),
    Malformed(&'static str),
    SllNetlink,
    /// An ARPHRD whose cooked-capture protocol field is no EtherType.
    SllHardware(u16),
    /// A cooked-capture protocol below 0x0600: a `LINUX_SLL_P_*` value.
    SllProtocol(u16),
    AddressFamily(u32),
    UndeclaredInterface(u32),
    /// The EtherType, where there is one.
    NotIp(Option<u16>),
    Fragment,
    NotUdp,
    /// The file ends inside a record (a capture still being written, or cut).
    CutShort,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LinkType(n) => write!(f, "link type {n} not supported"),
            Self::TruncatedLink(what) => write!(f, "truncated {what} header"),
            Self::Truncated(layer) => write!(f, "truncated {layer}"),
            Self::Malformed(what) => write!(f, "malformed {what}"),
            Self::SllNetlink => write!(
                f,
                "Linux cooked capture: netlink message (ARPHRD {ARPHRD_NETLINK}), not IP"
            ),
            Self::SllHardware(arphrd) => write!(
                f,
                "Linux cooked capture: ARPHRD {arphrd} frames carry no EtherType"
            ),
            Self::SllProtocol(protocol) => write!(
                f,
                "Linux cooked capture: protocol 0x{protocol:04x} is not an EtherType"
            ),
            Self::AddressFamily(family) => write!(
                f,
                "BSD loopback: address family {family} is neither IPv4 nor IPv6"
            ),
            Self::UndeclaredInterface(id) => {
                write!(f, "packet of undeclared pcapng interface {id}")
            }
            Self::NotIp(Some(ether_type)) => write!(f, "not IP (EtherType 0x{ether_type:04x})"),
            Self::NotIp(None) => write!(f, "not IP"),
            Self::Fragment => write!(f, "IP fragment (not reassembled)"),
            Self::NotUdp => write!(f, "not UDP"),
            Self::CutShort => write!(f, "last record cut short (file truncated)"),
        }
    }
}

impl From<SliceError> for SkipReason {
    fn from(error: SliceError) -> Self {
        match error {
            SliceError::Len(error) => match error.layer {
                Layer::TcpHeader
                | Layer::Icmpv4
                | Layer::Icmpv4Timestamp
                | Layer::Icmpv4TimestampReply
                | Layer::Icmpv6 => Self::NotUdp,
                Layer::Arp => Self::NotIp(Some(EtherType::ARP.0)),
                layer => Self::Truncated(layer),
            },
            SliceError::LinuxSll(_) => Self::Malformed("Linux cooked capture header"),
            SliceError::Macsec(_) => Self::Malformed("MACsec header"),
            SliceError::Ip(_) => Self::Malformed("IP header"),
            SliceError::Ipv4(_) => Self::Malformed("IPv4 header"),
            SliceError::Ipv6(_) => Self::Malformed("IPv6 header"),
            SliceError::Ipv4Exts(_) => Self::Malformed("IPv4 authentication header"),
            SliceError::Ipv6Exts(_) => Self::Malformed("IPv6 extension header"),
            SliceError::Tcp(_) => Self::NotUdp,
        }
    }
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

pub fn read_messages(path: &Path, raw_exporter: SocketAddr) -> Result<FileMessages> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    if n == 4 && magic == PCAPNG_MAGIC {
        return read_pcapng(file);
    }
    if n == 4 && PCAP_MAGICS.contains(&magic) {
        return read_pcap(file);
    }
    let mut payload = Vec::new();
    file.read_to_end(&mut payload)?;
    Ok(FileMessages {
        messages: vec![CaptureMessage {
            exporter: raw_exporter,
            received_ms: None,
            payload,
        }],
        ..FileMessages::default()
    })
}

/// pcap_file's own packet checks refuse any packet longer than the snap
/// length, so a capture made with `-s` would not read: raw records, checked here.
fn read_pcap(file: File) -> Result<FileMessages> {
    let mut reader = PcapReader::new(file).context("not a readable pcap")?;
    let header = reader.header();
    let link = LinkLayer::of(header.datalink);
    let frac_per_ms = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1_000_000,
    };
    let mut read = FileMessages::default();
    while let Some(packet) = reader.next_raw_packet() {
        let packet = match packet {
            Ok(packet) => packet,
            Err(e) if is_cut_short(&e) => {
                read.frame(Err(SkipReason::CutShort));
                break;
            }
            Err(e) => return Err(e).context("corrupt pcap packet"),
        };
        let received_ms =
            u64::from(packet.ts_sec) * 1_000 + u64::from(packet.ts_frac / frac_per_ms);
        read.frame(udp_message(link, &packet.data, Some(received_ms)));
    }
    Ok(read)
}

fn read_pcapng(file: File) -> Result<FileMessages> {
    let mut reader = PcapNgReader::new(file).context("not a readable pcapng")?;
    // The reader keeps the interfaces too, but as blocks: these are resolved.
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut read = FileMessages::default();
    while let Some(block) = reader.next_block() {
        let block = match block {
            Ok(block) => block,
            Err(e) if is_cut_short(&e) => {
                read.frame(Err(SkipReason::CutShort));
                break;
            }
            Err(e) => return Err(e).context("corrupt pcapng block"),
        };
        match block {
            // Interface ids count from 0 again in each section.
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => interfaces.push(Interface::new(&idb)),
            Block::EnhancedPacket(epb) => {
                read.frame(match interfaces.get(epb.interface_id as usize) {
                    // pcap_file gives the raw ticks as if they were nanoseconds.
                    Some(i) => udp_message(i.link, &epb.data, i.millis(epb.timestamp.as_nanos())),
                    None => Err(SkipReason::UndeclaredInterface(epb.interface_id)),
                })
            }
            Block::SimplePacket(spb) => read.frame(match interfaces.first() {
                // The block's data runs on into its padding.
                Some(i) => {
                    let len = spb.data.len().min(spb.original_len as usize);
                    udp_message(i.link, &spb.data[..len], None)
                }
                None => Err(SkipReason::UndeclaredInterface(0)),
            }),
            // Obsolete, but still written by some old tools.
            Block::Packet(pb) => read.frame(match interfaces.get(usize::from(pb.interface_id)) {
                Some(i) => udp_message(i.link, &pb.data, i.millis(u128::from(pb.timestamp))),
                None => Err(SkipReason::UndeclaredInterface(u32::from(pb.interface_id))),
            }),
            _ => {}
        }
    }
    Ok(read)
}

fn is_cut_short(error: &PcapError) -> bool {
    matches!(error, PcapError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof)
}

/// A pcapng interface: its link layer and how to read its timestamps.
struct Interface {
    link: LinkLayer,
    /// From `if_tsresol` (default microseconds); `None` if unrepresentable.
    ticks_per_second: Option<u128>,
    /// `if_tsoffset`, in seconds.
    offset_s: u64,
}

impl Interface {
    fn new(idb: &InterfaceDescriptionBlock<'_>) -> Self {
        let mut resolution = 6u8;
        let mut offset_s = 0;
        for option in &idb.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(r) => resolution = *r,
                InterfaceDescriptionOption::IfTsOffset(o) => offset_s = *o,
                _ => {}
            }
        }
        // High bit set: a power of two; else a power of ten.
        let ticks_per_second = if resolution & 0x80 == 0 {
            10u128.checked_pow(u32::from(resolution))
        } else {
            2u128.checked_pow(u32::from(resolution & 0x7f))
        };
        Self {
            link: LinkLayer::of(idb.linktype),
            ticks_per_second,
            offset_s,
        }
    }

    fn millis(&self, ticks: u128) -> Option<u64> {
        let per_second = self.ticks_per_second?;
        let ms = u64::try_from(ticks.checked_mul(1_000)? / per_second).ok()?;
        ms.checked_add(self.offset_s.checked_mul(1_000)?)
    }
}

/// How a capture's frames begin, from its link type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkLayer {
    /// LINKTYPE_ETHERNET 1 (802.1Q/802.1ad tags included).
    Ethernet,
    /// LINKTYPE_LINUX_SLL 113: `tcpdump -i any` (or `-y LINUX_SLL`).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 276: `tcpdump -i any` with libpcap ≥ 1.10.
    LinuxSll2,
    /// The IP header first: LINKTYPE_RAW 101, DLT_RAW 12 and 14 as some
    /// platforms write them, LINKTYPE_IPV4 228 and LINKTYPE_IPV6 229.
    RawIp,
    /// DLT_NULL 0 and LINKTYPE_LOOP 108: a 4-byte address family.
    BsdLoopback,
    Unsupported(u32),
}

impl LinkLayer {
    fn of(datalink: DataLink) -> Self {
        // pcap keeps FCS flags above the low 16 bits of the field.
        match u32::from(datalink) & 0xffff {
            1 => Self::Ethernet,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            12 | 14 | 101 | 228 | 229 => Self::RawIp,
            0 | 108 => Self::BsdLoopback,
            other => Self::Unsupported(other),
        }
    }

    fn slice(self, frame: &[u8]) -> Result<SlicedPacket<'_>, SkipReason> {
        match self {
            Self::Ethernet => SlicedPacket::from_ethernet(frame).map_err(SkipReason::from),
            Self::LinuxSll => linux_sll(frame),
            Self::LinuxSll2 => linux_sll2(frame),
            Self::RawIp => SlicedPacket::from_ip(frame).map_err(SkipReason::from),
            Self::BsdLoopback => bsd_loopback(frame),
            Self::Unsupported(link_type) => Err(SkipReason::LinkType(link_type)),
        }
    }
}

const ARPHRD_FRAD: u16 = 770;
const ARPHRD_IEEE80211_RADIOTAP: u16 = 803;
const ARPHRD_NETLINK: u16 = 824;

/// Linux cooked capture v1, 16 bytes: packet type (2), ARPHRD (2), address
/// length (2), address (8), protocol (2). etherparse's own `from_linux_sll`
/// refuses ARPHRD values it does not list, loopback (772) among them.
fn linux_sll(frame: &[u8]) -> Result<SlicedPacket<'_>, SkipReason> {
    let (header, payload) = frame
        .split_first_chunk::<16>()
        .ok_or(SkipReason::TruncatedLink("Linux cooked capture v1"))?;
    let arphrd = u16::from_be_bytes([header[2], header[3]]);
    let protocol = u16::from_be_bytes([header[14], header[15]]);
    cooked(arphrd, protocol, payload)
}

/// Linux cooked capture v2, 20 bytes: protocol (2), reserved (2), interface
/// index (4), ARPHRD (2), packet type (1), address length (1), address (8).
fn linux_sll2(frame: &[u8]) -> Result<SlicedPacket<'_>, SkipReason> {
    let (header, payload) = frame
        .split_first_chunk::<20>()
        .ok_or(SkipReason::TruncatedLink("Linux cooked capture v2"))?;
    let protocol = u16::from_be_bytes([header[0], header[1]]);
    let arphrd = u16::from_be_bytes([header[8], header[9]]);
    cooked(arphrd, protocol, payload)
}

/// A cooked frame's payload: for most hardware types the protocol field is
/// the EtherType (GRE's protocol type on ARPHRD_IPGRE is one too).
fn cooked(arphrd: u16, protocol: u16, payload: &[u8]) -> Result<SlicedPacket<'_>, SkipReason> {
    match arphrd {
        ARPHRD_NETLINK => Err(SkipReason::SllNetlink),
        ARPHRD_FRAD | ARPHRD_IEEE80211_RADIOTAP => Err(SkipReason::SllHardware(arphrd)),
        _ if protocol < 0x0600 => Err(SkipReason::SllProtocol(protocol)),
        _ => SlicedPacket::from_ether_type(EtherType(protocol), payload).map_err(SkipReason::from),
    }
}

const AF_INET: u32 = 2;
/// AF_INET6 is 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on macOS.
const AF_INET6: [u32; 3] = [24, 28, 30];

/// BSD loopback: a 4-byte address family, then the IP packet. DLT_NULL has
/// the family in the capturing host's byte order, LINKTYPE_LOOP in network
/// order; the family is small, so the smaller of the two readings is right.
fn bsd_loopback(frame: &[u8]) -> Result<SlicedPacket<'_>, SkipReason> {
    let (family, packet) = frame
        .split_first_chunk::<4>()
        .ok_or(SkipReason::TruncatedLink("BSD loopback"))?;
    let family = u32::from_le_bytes(*family).min(u32::from_be_bytes(*family));
    let ether_type = match family {
        AF_INET => EtherType::IPV4,
        f if AF_INET6.contains(&f) => EtherType::IPV6,
        f => return Err(SkipReason::AddressFamily(f)),
    };
    SlicedPacket::from_ether_type(ether_type, packet).map_err(SkipReason::from)
}

/// The UDP payload and source of one captured frame, or why there is none.
fn udp_message(
    link: LinkLayer,
    frame: &[u8],
    received_ms: Option<u64>,
) -> Result<CaptureMessage, SkipReason> {
    let sliced = link.slice(frame)?;
    let (source, ip_payload) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (IpAddr::V4(ip.header().source_addr()), ip.payload()),
        Some(NetSlice::Ipv6(ip)) => (IpAddr::V6(ip.header().source_addr()), ip.payload()),
        Some(NetSlice::Arp(_)) => return Err(SkipReason::NotIp(Some(EtherType::ARP.0))),
        None => return Err(SkipReason::NotIp(sliced.payload_ether_type().map(|t| t.0))),
    };
    if ip_payload.fragmented {
        return Err(SkipReason::Fragment);
    }
    match &sliced.transport {
        Some(TransportSlice::Udp(udp)) => Ok(CaptureMessage {
            exporter: SocketAddr::new(source, udp.source_port()),
            received_ms,
            payload: udp.payload().to_vec(),
        }),
        _ => Err(SkipReason::NotUdp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(resolution: Option<u8>, offset_s: Option<u64>) -> Interface {
        let mut options = Vec::new();
        if let Some(r) = resolution {
            options.push(InterfaceDescriptionOption::IfTsResol(r));
        }
        if let Some(o) = offset_s {
            options.push(InterfaceDescriptionOption::IfTsOffset(o));
        }
        Interface::new(&InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options,
        })
    }

    #[test]
    fn pcapng_timestamps_follow_the_interface_resolution() {
        // Microseconds by default, then nanoseconds, then 1/1024 s after an offset.
        assert_eq!(
            interface(None, None).millis(1_714_521_841_352_123),
            Some(1_714_521_841_352)
        );
        assert_eq!(
            interface(Some(9), None).millis(1_714_521_841_352_123_456),
            Some(1_714_521_841_352)
        );
        assert_eq!(
            interface(Some(0x80 | 10), Some(1_000)).millis(1_536),
            Some(1_001_500)
        );
        assert_eq!(interface(Some(127), None).millis(1), None);
    }

    #[test]
    fn link_types_resolve_with_fcs_bits_masked() {
        assert_eq!(LinkLayer::of(DataLink::from(1u32)), LinkLayer::Ethernet);
        assert_eq!(
            LinkLayer::of(DataLink::from(0x1400_0001u32)),
            LinkLayer::Ethernet
        );
        assert_eq!(LinkLayer::of(DataLink::from(14u32)), LinkLayer::RawIp);
        assert_eq!(
            LinkLayer::of(DataLink::from(108u32)),
            LinkLayer::BsdLoopback
        );
        assert_eq!(
            LinkLayer::of(DataLink::from(147u32)),
            LinkLayer::Unsupported(147)
        );
    }

    #[test]
    fn cooked_frames_without_an_ether_type_are_named() {
        let mut netlink = [0u8; 36];
        netlink[2..4].copy_from_slice(&ARPHRD_NETLINK.to_be_bytes());
        assert_eq!(linux_sll(&netlink).err(), Some(SkipReason::SllNetlink));
        let mut can = [0u8; 36];
        can[8..10].copy_from_slice(&280u16.to_be_bytes());
        can[0..2].copy_from_slice(&0x000cu16.to_be_bytes());
        assert_eq!(
            linux_sll2(&can).err(),
            Some(SkipReason::SllProtocol(0x000c))
        );
        assert_eq!(
            linux_sll(&[0; 15]).err(),
            Some(SkipReason::TruncatedLink("Linux cooked capture v1"))
        );
        assert_eq!(
            bsd_loopback(&[0, 0, 0, 23, 0x60]).err(),
            Some(SkipReason::AddressFamily(23))
        );
    }
}

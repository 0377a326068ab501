//! Messages from files: UDP payloads of a pcap/pcapng capture, or a raw
//! datagram file (the whole file is one message).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

pub struct CaptureMessage {
    pub exporter: SocketAddr,
    pub received_ms: Option<u64>,
    pub payload: Vec<u8>,
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];

pub fn read_messages(path: &Path, raw_exporter: SocketAddr) -> Result<Vec<CaptureMessage>> {
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
    Ok(vec![CaptureMessage {
        exporter: raw_exporter,
        received_ms: None,
        payload,
    }])
}

fn read_pcap(file: File) -> Result<Vec<CaptureMessage>> {
    let mut reader = PcapReader::new(BufReader::new(file)).context("not a readable pcap")?;
    let datalink = reader.header().datalink;
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.context("corrupt pcap packet")?;
        let ts = packet.timestamp.as_millis() as u64;
        if let Some(message) = udp_payload(datalink, &packet.data, ts) {
            out.push(message);
        }
    }
    Ok(out)
}

fn read_pcapng(file: File) -> Result<Vec<CaptureMessage>> {
    let mut reader = PcapNgReader::new(BufReader::new(file)).context("not a readable pcapng")?;
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = block.context("corrupt pcapng block")?;
        let (interface, data, ts) = match block {
            Block::EnhancedPacket(epb) => (
                epb.interface_id,
                epb.data.into_owned(),
                epb.timestamp.as_millis() as u64,
            ),
            _ => continue,
        };
        let Some(datalink) = reader
            .interfaces()
            .get(interface as usize)
            .map(|i| i.linktype)
        else {
            continue;
        };
        if let Some(message) = udp_payload(datalink, &data, ts) {
            out.push(message);
        }
    }
    Ok(out)
}

/// The UDP payload and source of one captured frame; `None` for anything
/// else (non-UDP, fragments, unsupported link types).
fn udp_payload(datalink: DataLink, data: &[u8], ts_ms: u64) -> Option<CaptureMessage> {
    let sliced = match datalink {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok()?,
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok()?,
        // BSD loopback: a 4-byte address family, then the IP packet.
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?).ok()?,
        _ => return None,
    };
    let source = match sliced.net? {
        NetSlice::Ipv4(ip) => std::net::IpAddr::V4(ip.header().source_addr()),
        NetSlice::Ipv6(ip) => std::net::IpAddr::V6(ip.header().source_addr()),
        _ => return None,
    };
    let TransportSlice::Udp(udp) = sliced.transport? else {
        return None;
    };
    Some(CaptureMessage {
        exporter: SocketAddr::new(source, udp.source_port()),
        received_ms: Some(ts_ms),
        payload: udp.payload().to_vec(),
    })
}

//! Packet sections (RFC 5477, RFC 7133) through whole IPFIX messages:
//! records that carry the packet (`dataLinkFrameSection`,
//! `ipHeaderPacketSection`) instead of its addresses. Checked against
//! softflowd's PSAMP export as tshark decodes it, and against messages
//! written here byte by byte.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flowlink_flow::{Batch, Flow, ip_to_std};

use crate::netflow::NetflowDecoder;

const EXPORTER: &str = "192.0.2.1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An IPFIX message header (RFC 7011 §3.1), then the sets.
fn message(export_time: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body = sets.concat();
    let mut m = Vec::new();
    m.extend_from_slice(&10u16.to_be_bytes()); // version number
    m.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes()); // length, header included
    m.extend_from_slice(&export_time.to_be_bytes()); // export time
    m.extend_from_slice(&0u32.to_be_bytes()); // sequence number
    m.extend_from_slice(&1u32.to_be_bytes()); // observation domain id
    m.extend_from_slice(&body);
    m
}

/// A set (RFC 7011 §3.3.2): set id, length counting its own 4-byte header.
fn set(id: u16, records: &[&[u8]]) -> Vec<u8> {
    let body = records.concat();
    let mut s = Vec::new();
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    s.extend_from_slice(&body);
    s
}

/// A template set with one template record (RFC 7011 §3.4.1) of IANA
/// elements: (information element id, field length).
fn template_set(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (element, length) in fields {
        t.extend_from_slice(&element.to_be_bytes());
        t.extend_from_slice(&length.to_be_bytes());
    }
    set(2, &[t.as_slice()])
}

fn decode(messages: &[Vec<u8>]) -> Batch {
    let mut decoder = NetflowDecoder::default();
    let mut batch = Batch::default();
    for m in messages {
        decoder
            .decode(ip(EXPORTER), 1_714_521_600_000, m, &mut batch)
            .unwrap();
    }
    batch
}

fn addresses(flow: &Flow) -> (IpAddr, IpAddr) {
    (ip_to_std(flow.src), ip_to_std(flow.dst))
}

/// An Ethernet II frame with an 802.1Q tag carrying an IPv4 TCP SYN.
const VLAN_TCP_SYN_FRAME: [u8; 58] = [
    // Ethernet II header (IEEE 802.3 §3.1.1) with an 802.1Q tag (IEEE 802.1Q §9.3).
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination MAC
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source MAC
    0x81, 0x00, // TPID: 802.1Q
    0x00, 0x64, // PCP 0, DEI 0, VLAN 100
    0x08, 0x00, // EtherType: IPv4
    // IPv4 header (RFC 791 §3.1).
    0x45, // version 4, IHL 5
    0x00, // DSCP 0, ECN 0
    0x00, 0x3c, // total length 60 = 20 + 40 (TCP with options, not exported)
    0x00, 0x01, // identification
    0x40, 0x00, // flags DF, fragment offset 0
    0x40, // TTL 64
    0x06, // protocol 6 (TCP)
    0x00, 0x00, // header checksum (not checked)
    10, 1, 2, 3, // source 10.1.2.3
    10, 4, 5, 6, // destination 10.4.5.6
    // TCP header (RFC 9293 §3.1), its options cut off.
    0xd4, 0x31, // source port 54321
    0x00, 0x16, // destination port 22
    0x00, 0x00, 0x00, 0x04, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgment number
    0xa0, // data offset 10 (40 bytes), reserved
    0x02, // flags: SYN
    0xfa, 0xf0, // window
    0x00, 0x00, // checksum
    0x00, 0x00, // urgent pointer
];

#[test]
fn ip_header_packet_section_records_become_flows() {
    // Template set written out (RFC 7011 §3.3.2, §3.4.1, §3.2).
    let templates = vec![
        0x00, 0x02, // set id 2: template set
        0x00, 0x14, // set length 20 = 4 (set header) + 4 (record header) + 3 × 4
        0x01, 0x2c, // template id 300
        0x00, 0x03, // field count 3
        0x01, 0x39, // ipHeaderPacketSection (IE 313, RFC 5477), enterprise bit 0
        0xff, 0xff, // field length 65535: variable length (RFC 7011 §7)
        0x01, 0x9a, // sectionExportedOctets (IE 410, RFC 7133)
        0x00, 0x02, // 2 octets
        0x00, 0x98, // flowStartMilliseconds (IE 152)
        0x00, 0x08, // 8 octets
    ];
    let udp_over_ipv6: &[u8] = &[
        0x30, // variable length, one-octet form: 48 octets follow
        // IPv6 header (RFC 8200 §3).
        0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
        0x00, 0x6c, // payload length 108 = 8 (UDP) + 100 (payload, not exported)
        0x11, // next header: UDP
        0x40, // hop limit 64
        // Source 2001:db8::10, destination 2001:db8::20 (RFC 3849).
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // source
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, // destination
        // UDP header (RFC 768).
        0x9c, 0x40, // source port 40000
        0x02, 0x02, // destination port 514
        0x00, 0x6c, // length 108
        0x00, 0x00, // checksum
        0x00, 0x30, // sectionExportedOctets: 48, the whole section
        // flowStartMilliseconds: 1714521600000 (2024-05-01T00:00:00Z).
        0x00, 0x00, 0x01, 0x8f, 0x31, 0x73, 0x70, 0x00,
    ];
    let icmp_echo_over_ipv4: &[u8] = &[
        0xff, 0x00, 0x1c, // variable length, three-octet form: 255, then 28
        // IPv4 header (RFC 791 §3.1).
        0x45, 0x00, // version 4, IHL 5; DSCP 0, ECN 0
        0x00, 0x54, // total length 84 = 20 + 8 + 56 (not exported)
        0xab, 0xcd, // identification
        0x00, 0x00, // flags 0, fragment offset 0
        0x40, 0x01, // TTL 64, protocol 1 (ICMP)
        0x00, 0x00, // header checksum (not checked)
        192, 0, 2, 10, // source 192.0.2.10
        198, 51, 100, 20, // destination 198.51.100.20
        // ICMP echo request (RFC 792).
        0x08, 0x00, // type 8, code 0
        0x00, 0x00, // checksum
        0x12, 0x34, 0x00, 0x01, // identifier, sequence number
        0x00, 0x1c, // sectionExportedOctets: 28
        // flowStartMilliseconds: 1714521601000.
        0x00, 0x00, 0x01, 0x8f, 0x31, 0x73, 0x73, 0xe8,
    ];
    let data = set(300, &[udp_over_ipv6, icmp_echo_over_ipv4]);
    let b = decode(&[message(1_714_521_602, &[templates, data])]);
    assert!(b.rejected.is_empty(), "{:?}", b.rejected);
    assert_eq!(b.flows.len(), 2);

    let udp = &b.flows[0];
    assert_eq!(addresses(udp), (ip("2001:db8::10"), ip("2001:db8::20")));
    assert_eq!((udp.src_port, udp.dst_port, udp.protocol), (40000, 514, 17));
    assert_eq!(
        (udp.packets, udp.bytes),
        (1, 148),
        "IPv6 payload length + 40"
    );
    assert_eq!(udp.start_ms, 1_714_521_600_000);

    let icmp = &b.flows[1];
    assert_eq!(addresses(icmp), (ip("192.0.2.10"), ip("198.51.100.20")));
    assert_eq!((icmp.src_port, icmp.dst_port, icmp.protocol), (0, 0, 1));
    assert_eq!((icmp.icmp_type, icmp.icmp_code), (8, 0));
    assert_eq!((icmp.packets, icmp.bytes), (1, 84), "IPv4 total length");
    assert_eq!(icmp.start_ms, 1_714_521_601_000);
}

#[test]
fn record_counters_win_over_the_one_packet_of_a_section() {
    // packetDeltaCount (IE 2), then dataLinkFrameSection (IE 315), variable.
    let templates = template_set(304, &[(2, 4), (315, 65535)]);
    let mut record = 20u32.to_be_bytes().to_vec();
    record.push(VLAN_TCP_SYN_FRAME.len() as u8);
    record.extend_from_slice(&VLAN_TCP_SYN_FRAME);
    let b = decode(&[message(1, &[templates, set(304, &[record.as_slice()])])]);
    assert!(b.rejected.is_empty(), "{:?}", b.rejected);
    let f = &b.flows[0];
    assert_eq!(addresses(f), (ip("10.1.2.3"), ip("10.4.5.6")));
    assert_eq!(
        (f.src_port, f.dst_port, f.protocol, f.tcp_flags),
        (54321, 22, 6, 0x02)
    );
    assert_eq!((f.packets, f.bytes), (20, 60), "bytes from the IP header");
}

#[test]
fn records_with_addresses_ignore_their_section() {
    let templates = template_set(305, &[(8, 4), (12, 4), (2, 4), (1, 4), (315, 65535)]);
    let mut record = vec![10, 0, 0, 1, 10, 0, 0, 2];
    record.extend_from_slice(&7u32.to_be_bytes());
    record.extend_from_slice(&700u32.to_be_bytes());
    record.push(VLAN_TCP_SYN_FRAME.len() as u8);
    record.extend_from_slice(&VLAN_TCP_SYN_FRAME);
    let b = decode(&[message(1, &[templates, set(305, &[record.as_slice()])])]);
    assert!(b.rejected.is_empty(), "{:?}", b.rejected);
    let f = &b.flows[0];
    assert_eq!(addresses(f), (ip("10.0.0.1"), ip("10.0.0.2")));
    assert_eq!((f.src_port, f.protocol, f.packets, f.bytes), (0, 0, 7, 700));
}

#[test]
fn undecodable_sections_are_rejects_with_the_walker_s_reason() {
    // An ARP request (RFC 826) in a fixed 42-octet dataLinkFrameSection.
    let arp_template = template_set(301, &[(315, 42)]);
    let arp: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination MAC: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x08, 0x06, // EtherType: ARP
        0x00, 0x01, 0x08, 0x00, // hardware type Ethernet, protocol type IPv4
        0x06, 0x04, 0x00, 0x01, // address lengths 6 and 4, operation: request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1, // sender MAC, IPv4
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 2, // target MAC, IPv4
    ];
    // sectionExportedOctets, then a 64-octet ipHeaderPacketSection padded
    // with zeros after 30 real octets: the IPv6 header is cut, and the
    // padding must not be read as the rest of it.
    let padded_template = template_set(302, &[(410, 2), (313, 64)]);
    let mut padded = vec![0x00, 0x1e];
    padded.extend_from_slice(&[0x60, 0, 0, 0, 0x00, 0x08, 17, 64]);
    padded.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    padded.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0]);
    padded.resize(2 + 64, 0);
    let b = decode(&[message(
        1,
        &[
            arp_template,
            padded_template,
            set(301, &[arp]),
            set(302, &[padded.as_slice()]),
        ],
    )]);
    assert!(b.flows.is_empty(), "{:?}", b.flows);
    let reasons: Vec<&str> = b.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "template 301: dataLinkFrameSection: not an IP packet",
            "template 302: ipHeaderPacketSection: IPv6 header cut short",
        ]
    );
}

/// One row of `flows.csv`, tshark's decoding of the packet a PSAMP report
/// carries: the independent reference.
#[derive(Debug)]
struct TsharkReport {
    frame: u32,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    tcp_flags: u16,
    icmp: (u8, u8),
    packets: u64,
    octets: u64,
}

/// Empty cells (ports of ICMP, flags of UDP) are 0.
fn or_zero<T>(cell: &str) -> T
where
    T: FromStr + Default,
    T::Err: std::fmt::Debug,
{
    if cell.is_empty() {
        T::default()
    } else {
        cell.parse().unwrap()
    }
}

fn read_flows_csv(path: &Path) -> Vec<TsharkReport> {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let cell = |name: &str| cells[col(name)];
            let tcp_flags = match cell("tcp_flags") {
                "" => 0,
                hex => u16::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap(),
            };
            TsharkReport {
                frame: or_zero(cell("frame")),
                src: ip(cell("src")),
                dst: ip(cell("dst")),
                sport: or_zero(cell("sport")),
                dport: or_zero(cell("dport")),
                proto: or_zero(cell("proto")),
                tcp_flags,
                icmp: (or_zero(cell("icmp_type")), or_zero(cell("icmp_code"))),
                packets: or_zero(cell("packets")),
                octets: or_zero(cell("octets")),
            }
        })
        .collect()
}

/// softflowd `-v psamp -s 20` (template 3072: selectionSequenceId,
/// observationTimeMicroseconds, sectionExportedOctets and a 1390-octet
/// zero-padded dataLinkFrameSection), from the shared real-peers testbed.
#[test]
fn softflowd_psamp_reports_match_tshark() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/captures/softflowd_psamp");
    let reference = read_flows_csv(&dir.join("flows.csv"));
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("dgrams"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 233);

    let mut decoder = NetflowDecoder::default();
    let mut checked = 0;
    for file in &files {
        // Datagram NNNN is frame NNNN of the capture tshark decoded.
        let frame: u32 = file.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let datagram = fs::read(file).unwrap();
        let export_time = u32::from_be_bytes(datagram[4..8].try_into().unwrap());
        let mut batch = Batch::default();
        decoder
            .decode(
                ip("127.0.0.1"),
                u64::from(export_time) * 1000,
                &datagram,
                &mut batch,
            )
            .unwrap();
        assert!(
            batch.rejected.is_empty(),
            "frame {frame}: {:?}",
            batch.rejected
        );
        let rows: Vec<&TsharkReport> = reference.iter().filter(|r| r.frame == frame).collect();
        assert_eq!(batch.flows.len(), rows.len(), "frame {frame}");
        for (flow, row) in batch.flows.iter().zip(rows) {
            assert_eq!(addresses(flow), (row.src, row.dst), "frame {frame}");
            assert_eq!(
                (flow.src_port, flow.dst_port, flow.protocol),
                (row.sport, row.dport, row.proto),
                "frame {frame}"
            );
            assert_eq!(
                (flow.packets, flow.bytes),
                (row.packets, row.octets),
                "frame {frame}"
            );
            assert_eq!(flow.packets, 1, "frame {frame}");
            assert_eq!(u16::from(flow.tcp_flags), row.tcp_flags, "frame {frame}");
            if matches!(row.proto, 1 | 58) {
                assert_eq!((flow.icmp_type, flow.icmp_code), row.icmp, "frame {frame}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, reference.len());
    assert_eq!(checked, 232, "one report per packet 1, 21, 41, … of 4637");
}

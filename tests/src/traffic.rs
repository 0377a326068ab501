//! What the tests send: capture datagrams, and synthetic ones with as many
//! distinct traffic keys as a test needs.

use std::net::UdpSocket;

use super::fixtures::datagram_files;

/// Sends every datagram of a capture, in order, from one socket.
pub fn send_capture(job: &str, port: u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for file in datagram_files(job) {
        socket
            .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", port))
            .unwrap();
    }
}

pub fn send_datagrams(datagrams: &[Vec<u8>], port: u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for datagram in datagrams {
        socket.send_to(datagram, ("127.0.0.1", port)).unwrap();
    }
}

/// One NetFlow v5 flow record, the fields the tests vary.
#[derive(Debug, Clone, Copy)]
pub struct V5Record {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub packets: u32,
    pub bytes: u32,
}

/// A NetFlow v5 datagram, laid out by the tests from Cisco's published v5
/// format (24-byte header: version, count, SysUptime, unix_secs,
/// unix_nsecs, flow_sequence, engine type/id, sampling; 48-byte records),
/// not by flowlink's decoder crate, so a field-order mistake there cannot
/// hide behind a matching one here. Uptime 100 s; each flow ran from
/// uptime 90 s to 99 s.
pub fn v5_datagram(records: &[V5Record]) -> Vec<u8> {
    let mut d = Vec::with_capacity(24 + 48 * records.len());
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&(records.len() as u16).to_be_bytes());
    d.extend_from_slice(&100_000u32.to_be_bytes()); // SysUptime, ms
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // unix_secs
    d.extend_from_slice(&0u32.to_be_bytes()); // unix_nsecs
    d.extend_from_slice(&1u32.to_be_bytes()); // flow_sequence
    d.extend_from_slice(&[0, 0]); // engine_type, engine_id
    d.extend_from_slice(&0u16.to_be_bytes()); // sampling_interval: none
    for r in records {
        d.extend_from_slice(&r.src);
        d.extend_from_slice(&r.dst);
        d.extend_from_slice(&[0; 4]); // nexthop
        d.extend_from_slice(&[0; 4]); // input, output ifIndex
        d.extend_from_slice(&r.packets.to_be_bytes()); // dPkts
        d.extend_from_slice(&r.bytes.to_be_bytes()); // dOctets
        d.extend_from_slice(&90_000u32.to_be_bytes()); // First
        d.extend_from_slice(&99_000u32.to_be_bytes()); // Last
        d.extend_from_slice(&r.src_port.to_be_bytes());
        d.extend_from_slice(&r.dst_port.to_be_bytes());
        d.extend_from_slice(&[0, r.tcp_flags, r.protocol, 0]); // pad1, flags, prot, tos
        d.extend_from_slice(&[0; 8]); // src_as, dst_as, masks, pad2
    }
    d
}

/// `records` TCP records from 10.0.0.1, 10.0.0.2, … to 192.168.0.1:443,
/// source ports 40000 + i; record i has 10 + i packets and 1000 + i bytes.
pub fn v5_records(records: u32) -> Vec<V5Record> {
    (0..records)
        .map(|i| V5Record {
            src: (0x0a00_0001 + i).to_be_bytes(),
            dst: [192, 168, 0, 1],
            src_port: 40000 + i as u16,
            dst_port: 443,
            protocol: 6,
            tcp_flags: 0x1b,
            packets: 10 + i,
            bytes: 1000 + i,
        })
        .collect()
}

/// `count` v5 datagrams of 30 records, every record from its own client
/// (10.0.d.r): `30 * count` distinct keys. Record r has 10 + r packets and
/// 1000 + r bytes.
pub fn distinct_key_datagrams(count: u32) -> Vec<Vec<u8>> {
    (0..count)
        .map(|d| {
            let mut records = v5_records(30);
            for (r, record) in records.iter_mut().enumerate() {
                record.src = (0x0a00_0000 + d * 256 + r as u32).to_be_bytes();
            }
            v5_datagram(&records)
        })
        .collect()
}

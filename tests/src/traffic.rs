//! What the tests send: capture datagrams, and synthetic ones with as many
//! distinct traffic keys as a test needs.

use std::net::UdpSocket;

use flowlink_decoders::netflow::v5::synthetic_datagram;

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

/// `count` v5 datagrams of 30 records, every record from its own client
/// (10.0.d.r): `30 * count` distinct keys. Record r has 10 + r packets and
/// 1000 + r bytes.
pub fn distinct_key_datagrams(count: u32) -> Vec<Vec<u8>> {
    (0..count)
        .map(|d| {
            let mut datagram = synthetic_datagram(30, 0);
            for r in 0..30u32 {
                let at = 24 + r as usize * 48;
                datagram[at..at + 4].copy_from_slice(&(0x0a00_0000 + d * 256 + r).to_be_bytes());
            }
            datagram
        })
        .collect()
}

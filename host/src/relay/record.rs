//! A relayed message as it travels to the broker, and as it waits on disk
//! when the broker cannot take it: the exporter (the Kafka key and a
//! port header), when it arrived, and the bytes as received.

use std::net::SocketAddr;
use std::sync::Arc;

use super::disk_buffer::SegmentFile;
use crate::pipeline::{Ack, NO_EXPORTER, Payload, RawMessage};

/// Kafka header names an outlet reads back (`connector/kafka.rs`).
pub const HEADER_EXPORTER_PORT: &str = "flowlink-exporter-port";
pub const HEADER_RECEIVED_MS: &str = "flowlink-received-ms";
pub const HEADER_CONSUMER: &str = "flowlink-consumer";

#[derive(Debug)]
pub struct RelayRecord {
    /// [`NO_EXPORTER`] for sources without one (files, log streams): then
    /// the message has no key and the partitioner spreads them.
    pub exporter: SocketAddr,
    pub received_ms: u64,
    pub payload: Payload,
    /// A replayable source's receipt: fires once the broker or the disk
    /// buffer holds the message.
    pub ack: Option<Ack>,
    /// The disk segment it was read back from: removed once none of its
    /// records is left undelivered and unwritten elsewhere.
    pub segment: Option<Arc<SegmentFile>>,
}

impl RelayRecord {
    pub fn from_message(message: RawMessage) -> Self {
        RelayRecord {
            exporter: message.exporter,
            received_ms: message.received_ms,
            payload: message.payload,
            ack: message.ack,
            segment: None,
        }
    }

    /// The Kafka key: the exporter's address without its port, so every
    /// datagram of an exporter lands on one partition even when it
    /// changes source port.
    pub fn key(&self) -> Option<String> {
        (self.exporter != NO_EXPORTER).then(|| self.exporter.ip().to_string())
    }

    /// Delivered, or held elsewhere on disk: its receipt fires and its old
    /// segment lets go of it.
    pub fn settle(self) {
        if let Some(ack) = self.ack {
            ack.done();
        }
    }

    /// Bytes it takes in a disk segment.
    pub fn encoded_len(&self) -> usize {
        1 + 16 + 2 + 8 + 4 + self.payload.len()
    }

    /// `family (0, 4, 6) | address (16) | port | received_ms | len | payload`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (family, octets) = match self.exporter {
            e if e == NO_EXPORTER => (0u8, [0; 16]),
            SocketAddr::V4(v4) => {
                let mut octets = [0; 16];
                octets[..4].copy_from_slice(&v4.ip().octets());
                (4, octets)
            }
            SocketAddr::V6(v6) => (6, v6.ip().octets()),
        };
        out.push(family);
        out.extend_from_slice(&octets);
        out.extend_from_slice(&self.exporter.port().to_be_bytes());
        out.extend_from_slice(&self.received_ms.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// One record from the front of `bytes`, and what follows it.
    pub fn decode(bytes: &[u8]) -> Result<(RelayRecord, &[u8]), String> {
        let header = 1 + 16 + 2 + 8 + 4;
        if bytes.len() < header {
            return Err(format!("a record cut short ({} bytes)", bytes.len()));
        }
        let octets: [u8; 16] = bytes[1..17].try_into().expect("16 bytes");
        let port = u16::from_be_bytes(bytes[17..19].try_into().expect("2 bytes"));
        let exporter = match bytes[0] {
            0 => NO_EXPORTER,
            4 => SocketAddr::from((<[u8; 4]>::try_from(&octets[..4]).expect("4 bytes"), port)),
            6 => SocketAddr::from((octets, port)),
            other => return Err(format!("bad address family {other}")),
        };
        let received_ms = u64::from_be_bytes(bytes[19..27].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(bytes[27..31].try_into().expect("4 bytes")) as usize;
        let rest = &bytes[header..];
        if rest.len() < len {
            return Err(format!("a payload of {len} bytes cut short"));
        }
        let record = RelayRecord {
            exporter,
            received_ms,
            payload: rest[..len].to_vec().into(),
            ack: None,
            segment: None,
        };
        Ok((record, &rest[len..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_refused() {
        let records = [
            ("192.0.2.7:2055", b"v9".to_vec()),
            ("[2001:db8::1]:4739", vec![0; 300]),
        ];
        let mut bytes = Vec::new();
        for (exporter, payload) in &records {
            let record = RelayRecord {
                exporter: exporter.parse().unwrap(),
                received_ms: 1_700_000_000_123,
                payload: payload.clone().into(),
                ack: None,
                segment: None,
            };
            record.encode(&mut bytes);
            assert_eq!(record.key().unwrap(), record.exporter.ip().to_string());
        }
        let none = RelayRecord {
            exporter: NO_EXPORTER,
            received_ms: 1,
            payload: b"line".to_vec().into(),
            ack: None,
            segment: None,
        };
        assert_eq!(none.key(), None);
        none.encode(&mut bytes);
        let (first, rest) = RelayRecord::decode(&bytes).unwrap();
        assert_eq!(first.exporter, "192.0.2.7:2055".parse().unwrap());
        assert_eq!(&*first.payload, b"v9");
        let (second, rest) = RelayRecord::decode(rest).unwrap();
        assert_eq!(second.payload.len(), 300);
        assert_eq!(second.received_ms, 1_700_000_000_123);
        let (third, rest) = RelayRecord::decode(rest).unwrap();
        assert_eq!(third.exporter, NO_EXPORTER);
        assert!(rest.is_empty());
        // Any cut inside the first record (31 bytes of header, 2 of payload).
        for cut in 0..33 {
            assert!(RelayRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

//! A spooled batch on disk: a fixed header (magic, flow count, length,
//! CRC-32) and the `FlowBatch` protobuf. The checksum catches torn or
//! bit-rotted files; the flow count lets pruning say what it dropped
//! without decoding.

use prost::Message;

use crate::proto::FlowBatch;

const MAGIC: &[u8; 8] = b"FLSPOOL1";
pub const HEADER_LEN: usize = 8 + 4 + 4 + 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("not a spool file (bad magic)")]
    Magic,
    #[error("truncated: {0} bytes")]
    Truncated(usize),
    #[error("checksum mismatch")]
    Checksum,
    #[error("payload is not a FlowBatch: {0}")]
    Decode(String),
}

pub fn encode(batch: &FlowBatch) -> Vec<u8> {
    let payload = batch.encode_whole();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(batch.flows.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The flow count from the header alone (for pruning).
pub fn flow_count(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= 12 && &bytes[..8] == MAGIC)
        .then(|| u32::from_le_bytes(bytes[8..12].try_into().expect("4")))
}

pub fn decode(bytes: &[u8]) -> Result<FlowBatch, RecordError> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.len() >= 8 && &bytes[..8] != MAGIC {
            RecordError::Magic
        } else {
            RecordError::Truncated(bytes.len())
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(RecordError::Magic);
    }
    let length = u32::from_le_bytes(bytes[12..16].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != length {
        return Err(RecordError::Truncated(bytes.len()));
    }
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    FlowBatch::decode(payload).map_err(|e| RecordError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AggregatedFlow;

    fn batch() -> FlowBatch {
        FlowBatch {
            batch_id: "b1".into(),
            consumer: "edge".into(),
            flows: vec![
                AggregatedFlow {
                    dst_port: 443,
                    protocol: 6,
                    connections: 2,
                    ..Default::default()
                };
                3
            ],
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_and_reports_its_flow_count() {
        let bytes = encode(&batch());
        assert_eq!(flow_count(&bytes), Some(3));
        assert_eq!(decode(&bytes).unwrap(), batch());
    }

    #[test]
    fn torn_flipped_and_foreign_files_are_refused() {
        let bytes = encode(&batch());
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(RecordError::Truncated(_))
        ));
        assert!(matches!(
            decode(&bytes[..10]),
            Err(RecordError::Truncated(_))
        ));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&flipped), Err(RecordError::Checksum));
        assert_eq!(
            decode(b"definitely not a spool file"),
            Err(RecordError::Magic)
        );
    }
}

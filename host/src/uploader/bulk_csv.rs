//! Illumio's Bulk Traffic Loader body: `src_ip,dst_ip,dst_port,proto` lines.

use std::fmt::Write as _;

use crate::proto::FlowBatch;

/// The PCE refuses more lines than this in one request.
pub const BULK_CSV_MAX_LINES: usize = 1000;
/// Sent by the PCE's own Bulk Traffic Loader clients beside `text/csv`.
pub const BULK_CSV_VERSION_HEADER: &str = "X-Bulk-Traffic-Load-CSV-Version";

/// The batch as CSV bodies of at most [`BULK_CSV_MAX_LINES`] lines each.
/// Lines are written straight into the body: a million-key window would
/// otherwise make three strings a line.
pub fn bulk_csv_chunks(batch: &FlowBatch) -> Vec<String> {
    batch
        .flows
        .chunks(BULK_CSV_MAX_LINES)
        .map(|chunk| {
            let mut body = String::with_capacity(chunk.len() * 40);
            for flow in chunk {
                // Writing to a String cannot fail.
                let _ = writeln!(
                    body,
                    "{},{},{},{}",
                    flow.src_ip, flow.dst_ip, flow.dst_port, flow.protocol
                );
            }
            body
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AggregatedFlow;

    #[test]
    fn splits_at_the_pce_limit() {
        let flow = AggregatedFlow {
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            dst_port: 443,
            protocol: 6,
            ..Default::default()
        };
        let batch = FlowBatch {
            flows: vec![flow; 2500],
            ..Default::default()
        };
        let chunks = bulk_csv_chunks(&batch);
        assert_eq!(
            chunks.iter().map(|c| c.lines().count()).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        assert_eq!(chunks[0].lines().next(), Some("10.0.0.1,2001:db8::1,443,6"));
    }
}

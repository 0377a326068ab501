//! One consumer's open aggregation window.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::net::IpAddr;

use super::FlowKey;
use super::direction::DirectionInference;
use crate::proto::{AggregatedFlow, FlowBatch, ip_to_bytes};
use flowlink_flow::Flow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTotals {
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Unix ms; `u64::MAX` / 0 until a record with a time arrives.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub exporter: IpAddr,
}

pub struct Window {
    start_ms: u64,
    /// Fixed when the window opens: its checkpoints and its final upload
    /// carry the same id, so a receiver that dedupes sees it once.
    batch_id: String,
    /// Flows added since the last checkpoint.
    dirty: bool,
    // foldhash: faster than SipHash on these keys, still seeded per process,
    // so traffic cannot be shaped into collisions.
    keys: HashMap<FlowKey, WindowTotals, RandomState>,
}

impl Window {
    pub fn new(start_ms: u64) -> Self {
        Window {
            start_ms,
            batch_id: new_batch_id(),
            dirty: false,
            keys: HashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Folds one record in. Counters are scaled by the record's sampling
    /// interval here, once, whatever the format.
    /// Whether flows came in since the last [`Window::checkpointed`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn checkpointed(&mut self) {
        self.dirty = false;
    }

    pub fn add(&mut self, flow: &Flow, exporter: IpAddr, direction: &DirectionInference) {
        self.dirty = true;
        let scale = u64::from(flow.sampling_interval.max(1));
        let key = FlowKey::folded(flow, direction);
        let totals = self.keys.entry(key).or_insert(WindowTotals {
            connections: 0,
            packets: 0,
            bytes: 0,
            first_seen_ms: u64::MAX,
            last_seen_ms: 0,
            exporter,
        });
        totals.connections += 1;
        totals.packets = totals
            .packets
            .saturating_add(flow.packets.saturating_mul(scale));
        totals.bytes = totals
            .bytes
            .saturating_add(flow.bytes.saturating_mul(scale));
        if flow.start_ms != 0 {
            totals.first_seen_ms = totals.first_seen_ms.min(flow.start_ms);
        }
        totals.last_seen_ms = totals.last_seen_ms.max(flow.end_ms.max(flow.start_ms));
    }

    #[cfg(test)]
    pub fn get(&self, key: &FlowKey) -> Option<&WindowTotals> {
        self.keys.get(key)
    }

    pub fn into_batch(self, consumer: &str, end_ms: u64) -> FlowBatch {
        self.to_batch(consumer, end_ms)
    }

    /// The window so far as a batch (for a checkpoint), under its own id.
    pub fn to_batch(&self, consumer: &str, end_ms: u64) -> FlowBatch {
        let flows = self
            .keys
            .iter()
            .map(|(key, totals)| AggregatedFlow {
                src_ip: ip_to_bytes(key.src),
                dst_ip: ip_to_bytes(key.dst),
                dst_port: u32::from(key.dst_port),
                protocol: u32::from(key.protocol),
                connections: totals.connections,
                packets: totals.packets,
                bytes: totals.bytes,
                first_seen_ms: if totals.first_seen_ms == u64::MAX {
                    0
                } else {
                    totals.first_seen_ms
                },
                last_seen_ms: totals.last_seen_ms,
                exporter: ip_to_bytes(totals.exporter),
                action: u32::from(key.action),
            })
            .collect();
        FlowBatch {
            batch_id: self.batch_id.clone(),
            consumer: consumer.to_owned(),
            window_start_ms: self.start_ms,
            window_end_ms: end_ms,
            flows,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Unique across restarts and daemons: wall-clock nanoseconds, process id,
/// and a per-process sequence.
fn new_batch_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos:032x}-{:08x}-{:08x}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlink_flow::{Action, IpAddr as WitIp};

    fn flow(
        src: u32,
        dport: u16,
        packets: u64,
        bytes: u64,
        start: u64,
        end: u64,
        sampling: u32,
    ) -> Flow {
        Flow {
            src: WitIp::V4(src),
            dst: WitIp::V4(0x0a00_0001),
            src_port: 40000,
            dst_port: dport,
            protocol: 6,
            packets,
            bytes,
            start_ms: start,
            end_ms: end,
            sampling_interval: sampling,
            tcp_flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            icmp_unknown: false,
            action: Action::Unknown,
        }
    }

    #[test]
    fn folds_records_of_one_key_and_scales_by_sampling() {
        let exporter: IpAddr = "192.0.2.1".parse().unwrap();
        let off = DirectionInference::new(crate::config::DirectionRule::Off, &[]);
        let mut w = Window::new(0);
        w.add(&flow(1, 443, 2, 200, 1000, 2000, 1), exporter, &off);
        w.add(&flow(1, 443, 3, 300, 500, 1500, 10), exporter, &off);
        w.add(&flow(2, 443, 1, 100, 0, 0, 0), exporter, &off);
        assert_eq!(w.len(), 2);
        let t = w.get(&FlowKey::of(&flow(1, 443, 0, 0, 0, 0, 1))).unwrap();
        assert_eq!((t.connections, t.packets, t.bytes), (2, 32, 3200));
        assert_eq!((t.first_seen_ms, t.last_seen_ms), (500, 2000));
    }

    #[test]
    fn replies_fold_into_the_client_key() {
        let auto = DirectionInference::new(crate::config::DirectionRule::Auto, &[]);
        let exporter: IpAddr = "192.0.2.1".parse().unwrap();
        let mut w = Window::new(0);
        let request = flow(1, 443, 2, 200, 1000, 2000, 1);
        let mut reply = request;
        (reply.src, reply.dst) = (request.dst, request.src);
        (reply.src_port, reply.dst_port) = (443, 40000);
        w.add(&request, exporter, &auto);
        w.add(&reply, exporter, &auto);
        assert_eq!(w.len(), 1);
        let t = w.get(&FlowKey::of(&request)).unwrap();
        assert_eq!((t.connections, t.packets, t.bytes), (2, 4, 400));
    }

    #[test]
    fn icmp_is_keyed_by_type_and_code() {
        let mut echo = flow(1, 0, 1, 84, 1, 1, 1);
        echo.protocol = 1;
        echo.icmp_type = 8;
        let mut unreachable = echo;
        unreachable.icmp_type = 3;
        unreachable.icmp_code = 3;
        assert_eq!(FlowKey::of(&echo).dst_port, 0x0800);
        assert_eq!(FlowKey::of(&unreachable).dst_port, 0x0303);
    }
}

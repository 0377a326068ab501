//! One consumer's open aggregation window.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::FlowKey;
use super::direction::DirectionInference;
use super::flow_key::{key_port, orient};
use super::key_table::{KeyHash, KeyTable};
use crate::proto::{AggregatedFlow, FlowBatch};
#[cfg(test)]
use flowlink_flow::{Flow, PackedFlows};
use flowlink_flow::{FlowRef, PackedRecord};

/// A key's counters as the tests read them.
#[cfg(test)]
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

/// An IPv4 key, the common case, in 12 bytes (a [`FlowKey`] takes 38,
/// 40 with padding):
/// at a million keys the entries' size decides the window's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct V4Key {
    src: u32,
    dst: u32,
    dst_port: u16,
    protocol: u8,
    action: u8,
}

impl V4Key {
    #[cfg(test)]
    fn of(key: &FlowKey) -> Option<Self> {
        match (key.src, key.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(V4Key {
                src: src.into(),
                dst: dst.into(),
                dst_port: key.dst_port,
                protocol: key.protocol,
                action: key.action,
            }),
            _ => None,
        }
    }

    /// The key a packed record folds into when both its addresses are
    /// IPv4, read in place; as [`FlowKey::folded`].
    #[inline]
    fn folded(r: FlowRef, direction: &DirectionInference) -> Option<Self> {
        let (src, dst) = r.v4_pair()?;
        let port = key_port(r.protocol(), r.icmp_type(), r.icmp_code(), r.dst_port());
        let (src, dst, dst_port) = orient(src, dst, port, direction.orientation(r));
        Some(V4Key {
            src,
            dst,
            dst_port,
            protocol: r.protocol(),
            action: r.action_code(),
        })
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(self.src.into()),
            dst: IpAddr::V4(self.dst.into()),
            dst_port: self.dst_port,
            protocol: self.protocol,
            action: self.action,
        }
    }
}

/// A key's counters; the exporter as an index into the window's list of
/// exporters (a window sees a few, each of a million keys named one).
/// Records as a `u32` (saturating; four billion records of one key in one
/// window is over a million a second for an hour): with it the exporter
/// index fills the last 8 bytes, and a key with its counters takes 56
/// bytes instead of 64, an eighth less memory to fault in.
#[derive(Debug, Clone, Copy)]
struct Totals {
    packets: u64,
    bytes: u64,
    first_seen_ms: u64,
    last_seen_ms: u64,
    connections: u32,
    exporter: u32,
}

impl Totals {
    fn new(exporter: u32) -> Self {
        Totals {
            connections: 0,
            packets: 0,
            bytes: 0,
            first_seen_ms: u64::MAX,
            last_seen_ms: 0,
            exporter,
        }
    }

    /// Folds one record in. Counters are scaled by the record's sampling
    /// interval here, once, whatever the format.
    #[inline]
    fn fold(&mut self, r: FlowRef) {
        let scale = u64::from(r.sampling_interval().max(1));
        self.connections = self.connections.saturating_add(1);
        self.packets = self
            .packets
            .saturating_add(r.packets().saturating_mul(scale));
        self.bytes = self.bytes.saturating_add(r.bytes().saturating_mul(scale));
        let (start_ms, end_ms) = (r.start_ms(), r.end_ms());
        if start_ms != 0 {
            self.first_seen_ms = self.first_seen_ms.min(start_ms);
        }
        self.last_seen_ms = self.last_seen_ms.max(end_ms.max(start_ms));
    }
}

/// Records whose keys are hashed and prefetched before the first is
/// folded in: enough misses in flight to cover one's latency, few enough
/// that the first slot is still in cache when its fold comes.
const PREFETCH_RUN: usize = 16;

/// A record's key and its hash, between prefetch and fold.
#[derive(Clone, Copy)]
enum Keyed {
    None,
    V4(V4Key, KeyHash),
    Other(FlowKey, KeyHash),
}

pub struct Window {
    start_ms: u64,
    /// Fixed when the window opens: its checkpoints and its final upload
    /// carry the same id, so a receiver that dedupes sees it once.
    batch_id: String,
    /// Flows added since the last checkpoint was handed over.
    dirty: bool,
    /// Set by the closer when that checkpoint could not be written: the
    /// next round writes the window again.
    checkpoint_failed: Arc<AtomicBool>,
    v4: KeyTable<V4Key, Totals>,
    /// IPv6 keys, and the odd record mixing families.
    other: KeyTable<FlowKey, Totals>,
    exporters: Vec<IpAddr>,
    /// The exporter of the last record and its index: records come in
    /// runs of one exporter.
    last_exporter: Option<(IpAddr, u32)>,
}

impl Window {
    pub fn new(start_ms: u64) -> Self {
        Self::with_capacity(start_ms, 0)
    }

    /// A window with room for `keys` IPv4 keys, so a busy consumer's next
    /// window does not grow (and rehash) its way up to the last one's size.
    pub fn with_capacity(start_ms: u64, keys: usize) -> Self {
        Window {
            start_ms,
            batch_id: new_batch_id(),
            dirty: false,
            checkpoint_failed: Arc::default(),
            v4: KeyTable::with_capacity(keys),
            other: KeyTable::with_capacity(0),
            exporters: Vec::new(),
            last_exporter: None,
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// IPv4 keys: what [`Window::with_capacity`] sizes.
    pub fn v4_len(&self) -> usize {
        self.v4.len()
    }

    /// Whether the window needs writing: flows came in since the last
    /// checkpoint was handed over, or that one could not be written.
    pub fn needs_checkpoint(&self) -> bool {
        let failed = self.checkpoint_failed.swap(false, Ordering::Relaxed);
        self.dirty || failed
    }

    /// The window is being written; returns the flag the writer sets if it
    /// cannot be.
    pub fn checkpointed(&mut self) -> Arc<AtomicBool> {
        self.dirty = false;
        self.checkpoint_failed.clone()
    }

    fn exporter_index(&mut self, exporter: IpAddr) -> u32 {
        if let Some((ip, index)) = self.last_exporter
            && ip == exporter
        {
            return index;
        }
        let index = match self.exporters.iter().position(|e| *e == exporter) {
            Some(i) => i as u32,
            None => {
                self.exporters.push(exporter);
                (self.exporters.len() - 1) as u32
            }
        };
        self.last_exporter = Some((exporter, index));
        index
    }

    /// Folds one record in: the tests' way in, the daemon folds runs.
    #[cfg(test)]
    pub fn add(&mut self, flow: &Flow, exporter: IpAddr, direction: &DirectionInference) {
        let packed: PackedFlows = std::iter::once(*flow).collect();
        self.add_all(packed.records(), exporter, direction);
    }

    /// Folds records of one exporter in, in order; a key keeps the
    /// exporter of its first record. Records are read where the parser
    /// left them (packed). Their keys are hashed
    /// and their table slots prefetched [`PREFETCH_RUN`] at a time: at a
    /// million keys nearly every new key's slot is a cache miss, and
    /// started together the misses overlap instead of stalling one fold
    /// each.
    pub fn add_all(
        &mut self,
        records: &[PackedRecord],
        exporter: IpAddr,
        direction: &DirectionInference,
    ) {
        if records.is_empty() {
            return;
        }
        self.dirty = true;
        let exporter = self.exporter_index(exporter);
        let mut keys = [Keyed::None; PREFETCH_RUN];
        for run in records.chunks(PREFETCH_RUN) {
            for (keyed, record) in keys.iter_mut().zip(run) {
                let r = FlowRef::new(record);
                *keyed = match V4Key::folded(r, direction) {
                    Some(v4) => {
                        let hash = self.v4.hash(&v4);
                        self.v4.prefetch(hash);
                        Keyed::V4(v4, hash)
                    }
                    None => {
                        let key = FlowKey::folded(&r.to_flow(), direction);
                        let hash = self.other.hash(&key);
                        self.other.prefetch(hash);
                        Keyed::Other(key, hash)
                    }
                };
            }
            for (keyed, record) in keys.iter().zip(run) {
                let totals = match *keyed {
                    Keyed::V4(key, hash) => self
                        .v4
                        .get_or_insert_with(hash, key, || Totals::new(exporter)),
                    Keyed::Other(key, hash) => self
                        .other
                        .get_or_insert_with(hash, key, || Totals::new(exporter)),
                    Keyed::None => unreachable!("every record of the run was keyed"),
                };
                totals.fold(FlowRef::new(record));
            }
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &FlowKey) -> Option<WindowTotals> {
        let totals = match V4Key::of(key) {
            Some(v4) => self.v4.get(&v4),
            None => self.other.get(key),
        }?;
        Some(WindowTotals {
            connections: u64::from(totals.connections),
            packets: totals.packets,
            bytes: totals.bytes,
            first_seen_ms: totals.first_seen_ms,
            last_seen_ms: totals.last_seen_ms,
            exporter: self.exporters[totals.exporter as usize],
        })
    }

    pub fn into_batch(self, consumer: &str, end_ms: u64) -> FlowBatch {
        self.to_batch(consumer, end_ms)
    }

    /// The window so far as a batch (for a checkpoint), under its own id.
    pub fn to_batch(&self, consumer: &str, end_ms: u64) -> FlowBatch {
        let v4 = self.v4.iter().map(|(key, totals)| (key.key(), totals));
        let keys = v4.chain(self.other.iter().map(|(key, totals)| (*key, totals)));
        let mut flows = Vec::with_capacity(self.len());
        flows.extend(keys.map(|(key, totals)| AggregatedFlow {
            src_ip: key.src,
            dst_ip: key.dst,
            dst_port: u32::from(key.dst_port),
            protocol: u32::from(key.protocol),
            connections: u64::from(totals.connections),
            packets: totals.packets,
            bytes: totals.bytes,
            first_seen_ms: if totals.first_seen_ms == u64::MAX {
                0
            } else {
                totals.first_seen_ms
            },
            last_seen_ms: totals.last_seen_ms,
            exporter: self.exporters[totals.exporter as usize],
            action: u32::from(key.action),
        }));
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
    fn ipv6_and_mixed_keys_are_kept_apart_with_their_exporters() {
        let off = DirectionInference::new(crate::config::DirectionRule::Off, &[]);
        let (a, b): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "2001:db8::9".parse().unwrap());
        let v4 = flow(1, 443, 1, 10, 0, 0, 1);
        let mut v6 = v4;
        v6.src = WitIp::V6((0x2001_0db8 << 32, 1));
        let mut mixed = v4;
        mixed.dst = v6.src;
        let mut w = Window::new(0);
        w.add(&v4, a, &off);
        w.add(&v6, b, &off);
        w.add(&mixed, b, &off);
        w.add(&v4, b, &off);
        assert_eq!(w.len(), 3);
        assert_eq!(w.get(&FlowKey::of(&v4)).unwrap().exporter, a);
        assert_eq!(w.get(&FlowKey::of(&v4)).unwrap().connections, 2);
        assert_eq!(w.get(&FlowKey::of(&v6)).unwrap().exporter, b);
        assert_eq!(w.get(&FlowKey::of(&mixed)).unwrap().bytes, 10);
        let batch = w.to_batch("c", 1);
        assert_eq!(batch.flows.len(), 3);
        assert_eq!(batch.flows.iter().filter(|f| f.exporter == b).count(), 2);
    }

    #[test]
    fn a_run_longer_than_the_prefetch_run_folds_every_record_once() {
        let off = DirectionInference::new(crate::config::DirectionRule::Off, &[]);
        let exporter: IpAddr = "192.0.2.1".parse().unwrap();
        // 50 records (three prefetch runs and a part) over 5 IPv4 and
        // 2 IPv6 keys, taken in turn: key k gets the records r with
        // r % 7 == k, each of r + 1 packets.
        let records: Vec<Flow> = (0..50u64)
            .map(|r| {
                let k = (r % 7) as u32;
                let mut f = flow(k, 443, r + 1, 10, 0, 0, 1);
                if k >= 5 {
                    f.src = WitIp::V6((0x2001_0db8 << 32, u64::from(k)));
                }
                f
            })
            .collect();
        let packed: PackedFlows = records.iter().copied().collect();
        let mut w = Window::new(0);
        w.add_all(packed.records(), exporter, &off);
        assert_eq!(w.len(), 7);
        for k in 0..7u64 {
            let mine: Vec<u64> = (0..50).filter(|r| r % 7 == k).collect();
            let t = w.get(&FlowKey::of(&records[k as usize])).unwrap();
            assert_eq!(t.connections, mine.len() as u64, "key {k}");
            assert_eq!(
                t.packets,
                mine.iter().map(|r| r + 1).sum::<u64>(),
                "key {k}"
            );
        }
    }

    #[test]
    fn a_key_s_record_count_saturates() {
        let mut totals = Totals::new(0);
        totals.connections = u32::MAX - 1;
        let packed: PackedFlows = std::iter::once(flow(1, 443, 1, 10, 1, 2, 1)).collect();
        let record = FlowRef::new(&packed.records()[0]);
        totals.fold(record);
        totals.fold(record);
        assert_eq!(totals.connections, u32::MAX);
        assert_eq!(totals.packets, 2, "the other counters go on");
    }

    #[test]
    fn an_ipv4_key_with_its_counters_takes_56_bytes() {
        assert_eq!(std::mem::size_of::<(V4Key, Totals)>(), 56);
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

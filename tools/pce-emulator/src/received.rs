//! What the emulator has accepted, totalled per traffic key.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use prost::Message;
use serde::Serialize;

use flowlink::proto::FlowBatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    org: u32,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u32,
    protocol: u32,
    action: u32,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FlowTotals {
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Upload lines (bulk CSV) or batch entries (protobuf) that named the key.
    pub reports: u64,
}

/// One upload request as the emulator answered it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub time_ms: u64,
    pub endpoint: String,
    pub status: u16,
    pub batch_id: Option<String>,
}

#[derive(Default)]
pub struct Received {
    batch_ids: HashSet<String>,
    duplicate_batches: u64,
    csv_lines: u64,
    totals: BTreeMap<Key, FlowTotals>,
    requests: Vec<RequestRecord>,
    /// Append-only record of what was accepted, replayed at start.
    state_file: Option<File>,
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Received {
    /// Starts empty, or from what `state_file` says was accepted before.
    pub fn open(state_file: Option<&Path>) -> Result<Received> {
        let mut received = Received::default();
        let Some(path) = state_file else {
            return Ok(received);
        };
        if path.exists() {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line?;
                let entry: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
                let org = entry["org"].as_u64().unwrap_or(1) as u32;
                if let Some(encoded) = entry["protobuf"].as_str() {
                    let batch = FlowBatch::decode(BASE64.decode(encoded)?.as_slice())?;
                    received.apply_batch(org, &batch);
                } else if let Some(csv) = entry["csv"].as_str() {
                    let _ = received.apply_csv_line(org, csv);
                }
            }
        }
        received.state_file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        );
        Ok(received)
    }

    fn persist(&mut self, entry: serde_json::Value) -> Result<()> {
        if let Some(file) = &mut self.state_file {
            writeln!(file, "{entry}")?;
            file.sync_data()?;
        }
        Ok(())
    }

    pub fn log_request(
        &mut self,
        time_ms: u64,
        endpoint: &str,
        status: u16,
        batch_id: Option<&str>,
    ) {
        self.requests.push(RequestRecord {
            time_ms,
            endpoint: endpoint.to_owned(),
            status,
            batch_id: batch_id.map(str::to_owned),
        });
    }

    pub fn requests_json(&self) -> serde_json::Value {
        serde_json::json!({ "requests": self.requests })
    }

    /// Returns false for a batch id seen before (its flows are not counted
    /// again). Kept in the state file before it is acknowledged.
    pub fn add_batch(&mut self, org: u32, batch: &FlowBatch, raw: &[u8]) -> Result<bool> {
        if self.batch_ids.contains(&batch.batch_id) {
            self.duplicate_batches += 1;
            return Ok(false);
        }
        self.persist(serde_json::json!({"org": org, "protobuf": BASE64.encode(raw)}))?;
        Ok(self.apply_batch(org, batch))
    }

    fn apply_batch(&mut self, org: u32, batch: &FlowBatch) -> bool {
        if !self.batch_ids.insert(batch.batch_id.clone()) {
            return false;
        }
        for flow in &batch.flows {
            let key = Key {
                org,
                src: flow.src_ip,
                dst: flow.dst_ip,
                dst_port: flow.dst_port,
                protocol: flow.protocol,
                action: flow.action,
            };
            let t = self.totals.entry(key).or_default();
            if t.reports == 0 || (flow.first_seen_ms != 0 && flow.first_seen_ms < t.first_seen_ms) {
                t.first_seen_ms = flow.first_seen_ms;
            }
            t.last_seen_ms = t.last_seen_ms.max(flow.last_seen_ms);
            t.connections += flow.connections;
            t.packets += flow.packets;
            t.bytes += flow.bytes;
            t.reports += 1;
        }
        true
    }

    pub fn add_csv_line(&mut self, org: u32, line: &str) -> Result<(), String> {
        self.apply_csv_line(org, line)?;
        self.persist(serde_json::json!({"org": org, "csv": line}))
            .map_err(|e| e.to_string())
    }

    fn apply_csv_line(&mut self, org: u32, line: &str) -> Result<(), String> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [src, dst, port, proto] = fields[..] else {
            return Err(format!("expected 4 fields, got {}", fields.len()));
        };
        let src: IpAddr = src.parse().map_err(|_| format!("bad src_ip {src:?}"))?;
        let dst: IpAddr = dst.parse().map_err(|_| format!("bad dst_ip {dst:?}"))?;
        let dst_port: u32 = port.parse().map_err(|_| format!("bad dst_port {port:?}"))?;
        let protocol: u32 = proto.parse().map_err(|_| format!("bad proto {proto:?}"))?;
        self.csv_lines += 1;
        let key = Key {
            org,
            src,
            dst,
            dst_port,
            protocol,
            action: 0,
        };
        let t = self.totals.entry(key).or_default();
        t.connections += 1;
        t.reports += 1;
        Ok(())
    }

    pub fn to_json(&self) -> serde_json::Value {
        let flows: Vec<serde_json::Value> = self
            .totals
            .iter()
            .map(|(k, t)| {
                serde_json::json!({
                    "org": k.org, "src": k.src.to_string(), "dst": k.dst.to_string(),
                    "dst_port": k.dst_port, "protocol": k.protocol, "action": k.action,
                    "connections": t.connections, "packets": t.packets, "bytes": t.bytes,
                    "first_seen_ms": t.first_seen_ms, "last_seen_ms": t.last_seen_ms,
                    "reports": t.reports,
                })
            })
            .collect();
        serde_json::json!({
            "batches": self.batch_ids.len(),
            "duplicate_batches": self.duplicate_batches,
            "csv_lines": self.csv_lines,
            "flows": flows,
        })
    }
}

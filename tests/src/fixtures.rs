//! The independent exporters' captures and tshark's decoding of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One row of a capture's `flows.csv` (tshark's view of one flow record).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvFlow {
    pub frame: u32,
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub packets: u64,
    pub bytes: u64,
    /// RFC 5103 reverse counters (biflow captures), else 0.
    pub rev_packets: u64,
    pub rev_bytes: u64,
    /// sFlow sampling rate, else 0.
    pub sampling_rate: u32,
    /// Unix seconds with millisecond decimals, as tshark prints them.
    pub start: f64,
    pub end: f64,
}

pub fn capture_dir(job: &str) -> PathBuf {
    super::repo_root().join("tests/fixtures/captures").join(job)
}

/// The datagram files of a capture, in arrival order.
pub fn datagram_files(job: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(capture_dir(job).join("dgrams"))
        .expect("dgrams folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
}

pub fn read_flows_csv(job: &str) -> Vec<CsvFlow> {
    let text = std::fs::read_to_string(capture_dir(job).join("flows.csv")).expect("flows.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let (frame, src, dst, sport, dport, proto) = (
        col("frame"),
        col("src"),
        col("dst"),
        col("sport"),
        col("dport"),
        col("proto"),
    );
    let (packets, octets, start, end) = (col("packets"), col("octets"), col("start"), col("end"));
    let (rev_packets, rev_octets, sampling) =
        (col("rev_packets"), col("rev_octets"), col("sampling_rate"));
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f = split_csv_line(line);
            let f: Vec<&str> = f.iter().map(String::as_str).collect();
            CsvFlow {
                frame: f[frame].parse().unwrap(),
                src: f[src].to_owned(),
                dst: f[dst].to_owned(),
                sport: f[sport].parse().unwrap_or(0),
                dport: f[dport].parse().unwrap_or(0),
                proto: f[proto].parse().unwrap(),
                packets: f[packets].parse().unwrap(),
                bytes: f[octets].parse().unwrap(),
                rev_packets: f[rev_packets].parse().unwrap_or(0),
                rev_bytes: f[rev_octets].parse().unwrap_or(0),
                sampling_rate: f[sampling].parse().unwrap_or(0),
                start: f[start].parse().unwrap_or(0.0),
                end: f[end].parse().unwrap_or(0.0),
            }
        })
        .collect()
}

/// Splits one CSV line, honouring double quotes (tshark's dates contain commas).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// A traffic key as the emulator reports it: `(src, dst, dst_port, protocol)`.
pub type TrafficKey = (String, String, u16, u8);
/// `(connections, packets, bytes)` of one key.
pub type KeyTotals = (u64, u64, u64);

/// Expected totals per traffic key `(src, dst, dst_port, protocol)`:
/// `(connections, packets, bytes)`. For ICMP the key port is type*256+code,
/// which v5 exporters already put in the destination port.
pub fn expected_aggregation(flows: &[CsvFlow]) -> BTreeMap<TrafficKey, KeyTotals> {
    let mut totals = BTreeMap::new();
    for f in flows {
        let t = totals
            .entry((f.src.clone(), f.dst.clone(), f.dport, f.proto))
            .or_insert((0, 0, 0));
        t.0 += 1;
        t.1 += f.packets;
        t.2 += f.bytes;
    }
    totals
}

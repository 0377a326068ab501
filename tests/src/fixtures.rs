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
    /// ICMP type and code where tshark shows them (softflowd's IE 32/139).
    pub icmp: Option<(u8, u8)>,
    /// Cumulative TCP flags.
    pub tcp_flags: u8,
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

/// `icmp_ipv4.csv` (made by `fixtures/extract_icmp_ipv4.py` from tshark's
/// JSON): IE 32 values that flows.csv leaves out, one row per flow record.
fn read_icmp_ipv4(job: &str) -> Option<Vec<Option<u16>>> {
    let text = std::fs::read_to_string(capture_dir(job).join("icmp_ipv4.csv")).ok()?;
    Some(
        text.lines()
            .skip(1)
            .map(|l| l.trim().parse().ok())
            .collect(),
    )
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
    let (icmp_type, icmp_code) = (col("icmp_type"), col("icmp_code"));
    let tcp_flags = col("tcp_flags");
    let icmp_ipv4 = read_icmp_ipv4(job);
    let mut flows: Vec<CsvFlow> = lines
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
                icmp: f[icmp_type]
                    .parse()
                    .ok()
                    .map(|t| (t, f[icmp_code].parse().unwrap_or(0))),
                tcp_flags: u8::from_str_radix(f[tcp_flags].trim_start_matches("0x"), 16)
                    .unwrap_or(0),
                start: f[start].parse().unwrap_or(0.0),
                end: f[end].parse().unwrap_or(0.0),
            }
        })
        .collect();
    if let Some(icmp) = icmp_ipv4 {
        assert_eq!(icmp.len(), flows.len(), "{job}: icmp_ipv4.csv rows");
        for (flow, value) in flows.iter_mut().zip(icmp) {
            if let Some(type_code) = value.filter(|_| flow.icmp.is_none()) {
                flow.icmp = Some(((type_code >> 8) as u8, type_code as u8));
            }
        }
    }
    flows
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

/// One flow as flowlink should produce it from tshark's view.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedFlow {
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub packets: u64,
    pub bytes: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The aggregation key's port: for ICMP, type * 256 + code (from the
    /// ICMP fields, or from the port where pmacct puts it there).
    pub key_port: u16,
    /// 1-in-N; the aggregator multiplies packets and bytes by it.
    pub sampling: u64,
    pub tcp_flags: u8,
}

fn ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// tshark's rows as flows: one per record, or for RFC 5103 biflows one
/// per direction that carried packets (the reverse one with addresses and
/// ports swapped).
pub fn expected_flows(csv: &[CsvFlow]) -> Vec<ExpectedFlow> {
    let truth = ground_truth_icmp();
    let mut out = Vec::new();
    for f in csv {
        let key_port = match (f.proto, f.icmp) {
            (1 | 58, Some((t, c))) => u16::from(t) << 8 | u16::from(c),
            // tshark does not say which ICMP type a v5/v7 record carries
            // in its ports (exporters differ): the input's truth does.
            (1 | 58, None) => truth_icmp_of(&truth, f).unwrap_or(f.dport),
            _ => f.dport,
        };
        let forward = ExpectedFlow {
            src: f.src.clone(),
            dst: f.dst.clone(),
            sport: f.sport,
            dport: f.dport,
            proto: f.proto,
            packets: f.packets,
            bytes: f.bytes,
            start_ms: ms(f.start),
            end_ms: ms(f.end),
            key_port,
            sampling: u64::from(f.sampling_rate.max(1)),
            tcp_flags: f.tcp_flags,
        };
        let biflow = f.rev_packets > 0 || f.rev_bytes > 0;
        if biflow {
            if f.packets > 0 {
                out.push(forward.clone());
            }
            out.push(ExpectedFlow {
                src: f.dst.clone(),
                dst: f.src.clone(),
                sport: f.dport,
                dport: f.sport,
                packets: f.rev_packets,
                bytes: f.rev_bytes,
                key_port: if matches!(f.proto, 1 | 58) {
                    key_port
                } else {
                    f.sport
                },
                ..forward
            });
        } else {
            out.push(forward);
        }
    }
    out
}

/// ICMP flows of the input's ground truth: `(src, dst, proto, packets,
/// bytes) -> type * 256 + code`.
type IcmpTruth = Vec<((String, String, u8, u64, u64), u16)>;

fn ground_truth_icmp() -> IcmpTruth {
    let path = super::repo_root().join("tests/fixtures/ground_truth.json");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    truth["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let t = f.get("icmp_type")?.as_u64()?;
            let c = f["icmp_code"].as_u64()?;
            Some((
                (
                    f["src"].as_str()?.to_owned(),
                    f["dst"].as_str()?.to_owned(),
                    f["proto"].as_u64()? as u8,
                    f["packets"].as_u64()?,
                    f["bytes"].as_u64()?,
                ),
                (t << 8 | c) as u16,
            ))
        })
        .collect()
}

/// The truth's type and code of a record: the flow with the same
/// addresses and counts, or the only one between the same addresses.
fn truth_icmp_of(truth: &IcmpTruth, f: &CsvFlow) -> Option<u16> {
    let exact = truth.iter().find(|((s, d, p, pk, b), _)| {
        (s, d, *p, *pk, *b) == (&f.src, &f.dst, f.proto, f.packets, f.bytes)
    });
    if let Some((_, type_code)) = exact {
        return Some(*type_code);
    }
    let mut same_hosts = truth
        .iter()
        .filter(|((s, d, p, _, _), _)| (s, d, *p) == (&f.src, &f.dst, f.proto));
    match (same_hosts.next(), same_hosts.next()) {
        (Some((_, type_code)), None) => Some(*type_code),
        _ => None,
    }
}

/// The daemon's default `service_ports` list (docs/aggregation.md): the
/// direction rule is part of what these tests pin down.
const SERVICE_PORTS: &[u16] = &[
    1433, 1521, 1812, 1813, 2049, 2181, 2379, 2380, 3306, 3389, 3478, 4369, 4789, 5060, 5061, 5349,
    5432, 5672, 5671, 5900, 5985, 5986, 6379, 6443, 6514, 8000, 8008, 8080, 8443, 8888, 9000, 9042,
    9092, 9093, 9200, 9300, 9418, 10250, 11211, 15672, 27017,
];

/// The key a flow is aggregated under with `direction_inference: auto`:
/// replies (ICMP echo replies, records sent from the service port) count
/// toward the client's `client → server:port` key.
pub fn folded_key(f: &ExpectedFlow) -> TrafficKey {
    let forward = (f.src.clone(), f.dst.clone(), f.key_port, f.proto);
    let reply = |port: u16| (f.dst.clone(), f.src.clone(), port, f.proto);
    match f.proto {
        1 if f.key_port >> 8 == 0 => reply(8 << 8),
        58 if f.key_port >> 8 == 129 => reply(128 << 8),
        6 if f.tcp_flags & 0x12 == 0x02 => forward,
        6 | 17 | 132 => {
            let (s, d) = (f.sport, f.dport);
            // Port 0 is "not carried": no comparison, keyed as reported.
            if s == 0 || d == 0 {
                return forward;
            }
            let src_is_service = match (s < 1024, d < 1024) {
                (true, false) => true,
                (false, true) => false,
                _ => match (SERVICE_PORTS.contains(&s), SERVICE_PORTS.contains(&d)) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => s < d,
                },
            };
            if src_is_service && s != d {
                reply(s)
            } else {
                forward
            }
        }
        _ => forward,
    }
}

/// Expected totals per traffic key: connections (records folded in), and
/// packets and bytes scaled by each flow's sampling interval.
pub fn aggregate(flows: &[ExpectedFlow]) -> BTreeMap<TrafficKey, KeyTotals> {
    aggregate_by(flows, folded_key)
}

/// Totals with every record keyed as reported (`direction_inference: off`).
pub fn aggregate_unfolded(flows: &[ExpectedFlow]) -> BTreeMap<TrafficKey, KeyTotals> {
    aggregate_by(flows, |f| {
        (f.src.clone(), f.dst.clone(), f.key_port, f.proto)
    })
}

fn aggregate_by(
    flows: &[ExpectedFlow],
    key: impl Fn(&ExpectedFlow) -> TrafficKey,
) -> BTreeMap<TrafficKey, KeyTotals> {
    let mut totals = BTreeMap::new();
    for f in flows {
        let t = totals.entry(key(f)).or_insert((0, 0, 0));
        t.0 += 1;
        t.1 += f.packets * f.sampling;
        t.2 += f.bytes * f.sampling;
    }
    totals
}

/// The input's own truth (`fixtures/ground_truth.json`, from the testbed's
/// pcap generator): per conversation `client → server:port` (ICMP: the
/// request's type * 256 + code), packets and bytes of both directions.
pub fn ground_truth_conversations() -> BTreeMap<TrafficKey, (u64, u64)> {
    let path = super::repo_root().join("tests/fixtures/ground_truth.json");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut totals = BTreeMap::new();
    for c in truth["conversations"].as_array().unwrap() {
        let c2s = &c["directions"]["c2s"];
        let port = match c2s.get("icmp_type") {
            Some(t) => (t.as_u64().unwrap() << 8 | c2s["icmp_code"].as_u64().unwrap()) as u16,
            None => c["dport"].as_u64().unwrap() as u16,
        };
        let key = (
            c["client"].as_str().unwrap().to_owned(),
            c["server"].as_str().unwrap().to_owned(),
            port,
            c["proto_num"].as_u64().unwrap() as u8,
        );
        let t = totals.entry(key).or_insert((0, 0));
        for direction in c["directions"].as_object().unwrap().values() {
            t.0 += direction["packets"].as_u64().unwrap();
            t.1 += direction["bytes"].as_u64().unwrap();
        }
    }
    totals
}

/// Expected totals of a capture's flows.
pub fn expected_aggregation(csv: &[CsvFlow]) -> BTreeMap<TrafficKey, KeyTotals> {
    aggregate(&expected_flows(csv))
}

/// The comparable part of a record: 5-tuple, packets, bytes.
pub type RecordTuple = (String, String, u16, u16, u8, u64, u64);

impl CsvFlow {
    /// tshark's row as a [`RecordTuple`].
    pub fn tuple(&self) -> RecordTuple {
        (
            self.src.clone(),
            self.dst.clone(),
            self.sport,
            self.dport,
            self.proto,
            self.packets,
            self.bytes,
        )
    }
}

/// A `flowlink decode` JSON line as a [`RecordTuple`].
pub fn json_tuple(v: &serde_json::Value) -> RecordTuple {
    (
        v["src_addr"].as_str().unwrap().to_owned(),
        v["dst_addr"].as_str().unwrap().to_owned(),
        v["src_port"].as_u64().unwrap() as u16,
        v["dst_port"].as_u64().unwrap() as u16,
        v["protocol"].as_u64().unwrap() as u8,
        v["packets"].as_u64().unwrap(),
        v["bytes"].as_u64().unwrap(),
    )
}

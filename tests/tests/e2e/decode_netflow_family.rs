//! Every NetFlow v7/v9 and IPFIX capture from the independent exporters,
//! through `flowlink decode` and the real `netflow` component, against
//! tshark's decoding of the same bytes.

use flowlink_e2e::{ExpectedFlow, datagram_files, decode_json, expected_flows, read_flows_csv};
use serde_json::Value;

/// 2^32 ms: where the exporter's uptime wrapped, tshark does not unwrap
/// FIRST/LAST_SWITCHED and flowlink does (as nfdump), so the two differ by
/// exactly this much.
const UPTIME_WRAP_MS: i64 = 1 << 32;

fn decode(job: &str) -> (Vec<Value>, String) {
    decode_json("netflow", &datagram_files(job))
}

/// The decoded JSON line in the shape of an expected flow (the key port
/// and sampling are checked elsewhere).
fn record(v: &Value, like: &ExpectedFlow) -> ExpectedFlow {
    ExpectedFlow {
        src: v["src_addr"].as_str().unwrap().to_owned(),
        dst: v["dst_addr"].as_str().unwrap().to_owned(),
        sport: v["src_port"].as_u64().unwrap() as u16,
        dport: v["dst_port"].as_u64().unwrap() as u16,
        proto: v["protocol"].as_u64().unwrap() as u8,
        packets: v["packets"].as_u64().unwrap(),
        bytes: v["bytes"].as_u64().unwrap(),
        start_ms: v["start_ms"].as_i64().unwrap(),
        end_ms: v["end_ms"].as_i64().unwrap(),
        ..like.clone()
    }
}

fn time_matches(ours: i64, tshark: i64, wraps: bool) -> bool {
    let diff = (ours - tshark).abs();
    diff <= 1 || (wraps && (diff - UPTIME_WRAP_MS).abs() <= 1)
}

fn check(job: &str, flows: usize, wraps: bool) {
    let (decoded, stderr) = decode(job);
    assert!(
        stderr.contains(", 0 records rejected, 0 messages failed"),
        "{job}: {stderr}"
    );
    let want = expected_flows(&read_flows_csv(job));
    assert_eq!(decoded.len(), flows, "{job}: flow count");
    assert_eq!(decoded.len(), want.len(), "{job}: flow count vs tshark");
    let got: Vec<ExpectedFlow> = decoded
        .iter()
        .zip(&want)
        .map(|(v, w)| record(v, w))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let same_tuple = (
            &g.src, &g.dst, g.sport, g.dport, g.proto, g.packets, g.bytes,
        ) == (
            &w.src, &w.dst, w.sport, w.dport, w.proto, w.packets, w.bytes,
        );
        assert!(same_tuple, "{job}: flow {i}: ours {g:?}\ntshark {w:?}");
        if matches!(w.proto, 1 | 58) {
            let v = &decoded[i];
            let type_code =
                v["icmp_type"].as_u64().unwrap() << 8 | v["icmp_code"].as_u64().unwrap();
            assert_eq!(
                type_code,
                u64::from(w.key_port),
                "{job}: flow {i}: ICMP type and code"
            );
        }
        assert!(
            time_matches(g.start_ms, w.start_ms, wraps) && time_matches(g.end_ms, w.end_ms, wraps),
            "{job}: flow {i} times: ours {g:?}\ntshark {w:?}"
        );
    }
    for v in &decoded {
        assert_eq!(v["sampling_interval"], 1, "{job}: unsampled exporters");
    }
}

#[test]
fn fprobe_v7() {
    check("fprobe_v7", 343, false);
}

#[test]
fn softflowd_v9() {
    check("softflowd_v9", 569, false);
}

#[test]
fn softflowd_v9_without_time_adjustment_wraps_uptime() {
    check("softflowd_v9_noadj", 569, true);
}

#[test]
fn pmacct_v5_wraps_uptime() {
    check("pmacct_nfprobe_v5", 343, true);
}

#[test]
fn pmacct_v9() {
    check("pmacct_nfprobe_v9", 569, false);
}

#[test]
fn softflowd_ipfix() {
    check("softflowd_v10", 569, false);
}

#[test]
fn softflowd_ipfix_biflow_gives_both_directions() {
    check("softflowd_v10_biflow", 569, false);
}

#[test]
fn pmacct_ipfix() {
    check("pmacct_nfprobe_v10", 569, false);
}

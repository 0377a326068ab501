//! `flowlink decode` through the real `netflow` component against tshark's
//! decoding of captures made by independent exporters (softflowd, fprobe).

use flowlink_e2e::{capture_dir, datagram_files, decode_json, json_tuple, read_flows_csv};
use serde_json::Value;

fn decode(files: &[std::path::PathBuf]) -> (Vec<Value>, String) {
    decode_json("netflow", files)
}

/// Same records, in the same order, with times within 1 ms of tshark's.
fn assert_matches_tshark(job: &str, decoded: &[Value]) {
    let expected = read_flows_csv(job);
    assert_eq!(decoded.len(), 343, "{job}: record count");
    assert_eq!(
        decoded.len(),
        expected.len(),
        "{job}: record count vs flows.csv"
    );
    for (i, (got, want)) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(
            json_tuple(got),
            want.tuple(),
            "{job}: record {i} (frame {})",
            want.frame
        );
        let start = got["start_ms"].as_u64().unwrap() as f64;
        let end = got["end_ms"].as_u64().unwrap() as f64;
        assert!(
            (start - want.start * 1000.0).abs() <= 1.0,
            "{job}: record {i} start {start} vs {}",
            want.start
        );
        assert!(
            (end - want.end * 1000.0).abs() <= 1.0,
            "{job}: record {i} end {end} vs {}",
            want.end
        );
        assert_eq!(got["sampling_interval"], 1);
    }
}

#[test]
fn softflowd_v5_datagrams_decode_exactly_as_tshark() {
    let (flows, stderr) = decode(&datagram_files("softflowd_v5"));
    assert!(
        stderr.contains("0 records rejected, 0 messages failed"),
        "{stderr}"
    );
    assert_matches_tshark("softflowd_v5", &flows);
}

#[test]
fn fprobe_v5_datagrams_decode_exactly_as_tshark() {
    let (flows, _) = decode(&datagram_files("fprobe_v5"));
    assert_matches_tshark("fprobe_v5", &flows);
}

#[test]
fn pcap_input_gives_the_same_records_with_the_exporter_address() {
    let (from_pcap, _) = decode(&[capture_dir("softflowd_v5").join("wire.pcap")]);
    assert_matches_tshark("softflowd_v5", &from_pcap);
    assert!(
        from_pcap.iter().all(|f| f["exporter"] == "127.0.0.1"),
        "exporter is the packet's source"
    );
}

#[test]
fn truncated_and_garbage_datagrams_are_reported_not_fatal() {
    let dir = flowlink_e2e::temp_dir("decode-bad");
    let good = std::fs::read(datagram_files("softflowd_v5")[0].clone()).unwrap();
    let truncated = dir.join("truncated.bin");
    std::fs::write(&truncated, &good[..24 + 48 * 2 + 7]).unwrap();
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, b"\x00\x63this is not netflow").unwrap();
    let (flows, stderr) = decode(&[truncated.clone(), garbage.clone()]);
    assert_eq!(
        flows.len(),
        2,
        "the two complete records of the truncated datagram"
    );
    assert!(
        stderr.contains("truncated.bin: message 0: record 2: v5 record 2 truncated"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "garbage.bin: message 0: rejected by the parser: unsupported NetFlow version 99"
        ),
        "{stderr}"
    );
}

//! `flowlink decode` through the real `netflow` component over captures of
//! the same softflowd NetFlow v5 datagrams in every common link type, made
//! by tcpdump, editcap, tcprewrite, mergecap and text2pcap
//! (`fixtures/captures/linktypes/README.md`), against tshark's decoding of
//! those datagrams (`softflowd_v5/flows.csv`).

use std::path::PathBuf;

use flowlink_e2e::{
    CsvFlow, decode_json, json_tuple, plugin_dir, read_flows_csv, repo_root, run_flowlink,
};

const V4: &str = "127.0.0.1";
const V6: &str = "::1";

/// What every capture carries: datagrams 1 and 2 (flows.csv frames) sent
/// from 127.0.0.1, datagram 3 from ::1.
const SENT: [(u32, &str); 3] = [(1, V4), (2, V4), (3, V6)];

fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/captures/linktypes")
        .join(name)
}

/// Decodes `file` and checks its records are tshark's for the `sent`
/// datagrams, in order, each with the exporter it was sent from. Returns
/// flowlink's stderr.
fn assert_decodes_as_tshark(file: &str, sent: &[(u32, &str)]) -> String {
    let (decoded, stderr) = decode_json("netflow", &[fixture(file)]);
    let csv = read_flows_csv("softflowd_v5");
    let mut expected: Vec<(&CsvFlow, &str)> = Vec::new();
    for &(frame, exporter) in sent {
        for flow in csv.iter().filter(|f| f.frame == frame) {
            expected.push((flow, exporter));
        }
    }
    assert!(!expected.is_empty(), "{file}: flows.csv has the datagrams");
    assert_eq!(
        decoded.len(),
        expected.len(),
        "{file}: record count\n{stderr}"
    );
    for (i, (got, (want, exporter))) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(
            json_tuple(got),
            want.tuple(),
            "{file}: record {i} (datagram {})",
            want.frame
        );
        let start = got["start_ms"].as_u64().unwrap() as f64;
        let end = got["end_ms"].as_u64().unwrap() as f64;
        assert!(
            (start - want.start * 1000.0).abs() <= 1.0,
            "{file}: record {i} start {start} vs {}",
            want.start
        );
        assert!(
            (end - want.end * 1000.0).abs() <= 1.0,
            "{file}: record {i} end {end} vs {}",
            want.end
        );
        assert_eq!(
            got["exporter"], *exporter,
            "{file}: record {i} (datagram {}) exporter",
            want.frame
        );
    }
    assert!(
        stderr.contains(&format!(
            "decoded {} messages: {} flows, 0 records rejected, 0 messages failed",
            sent.len(),
            expected.len()
        )),
        "{file}: {stderr}"
    );
    stderr
}

fn assert_all_decoded(file: &str, sent: &[(u32, &str)]) {
    let stderr = assert_decodes_as_tshark(file, sent);
    assert!(!stderr.contains("skipped"), "{file}: {stderr}");
}

#[test]
fn ethernet_from_linux_lo() {
    assert_all_decoded("ethernet_lo.pcap", &SENT);
}

#[test]
fn linux_cooked_v1_loopback_from_tcpdump_any() {
    assert_all_decoded("linux_sll.pcap", &SENT);
}

#[test]
fn linux_cooked_v2_from_tcpdump_any() {
    assert_all_decoded("linux_sll2.pcap", &SENT);
}

#[test]
fn ethernet_with_an_802_1q_tag() {
    assert_all_decoded("vlan_8021q.pcap", &SENT);
}

#[test]
fn raw_ip_linktype_101() {
    assert_all_decoded("rawip.pcap", &SENT);
}

#[test]
fn raw_ip_as_dlt_12() {
    assert_all_decoded("dlt_raw12.pcap", &SENT);
}

#[test]
fn raw_ipv4_and_raw_ipv6_linktypes() {
    assert_all_decoded("ipv4.pcap", &SENT[..2]);
    assert_all_decoded("ipv6.pcap", &SENT[2..]);
}

#[test]
fn bsd_null_loopback_in_either_byte_order() {
    assert_all_decoded("null_le.pcap", &SENT);
    assert_all_decoded("null_be.pcap", &SENT);
}

#[test]
fn openbsd_loop_linktype_108() {
    assert_all_decoded("loop_openbsd.pcap", &SENT);
}

#[test]
fn pcapng_interfaces_of_different_link_types() {
    let twice: Vec<(u32, &str)> = SENT.iter().chain(&SENT).copied().collect();
    assert_all_decoded("ethernet_and_sll.pcapng", &twice);
}

#[test]
fn non_udp_frames_are_counted_beside_the_datagrams() {
    let stderr = assert_decodes_as_tshark("udp_and_icmp.pcap", &SENT);
    assert!(
        stderr.contains("udp_and_icmp.pcap: 4 frames skipped: not UDP"),
        "{stderr}"
    );
}

/// Runs `flowlink decode --plugin netflow FILES…`, expecting it to fail;
/// returns (stdout lines, stderr).
fn decode_failing(files: &[PathBuf]) -> (usize, String) {
    let plugins = plugin_dir();
    let mut args = vec![
        "decode",
        "--plugin",
        "netflow",
        "--plugin-dir",
        plugins.to_str().unwrap(),
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = run_flowlink(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "decode should fail: {stderr}");
    (String::from_utf8_lossy(&out.stdout).lines().count(), stderr)
}

#[test]
fn a_capture_without_udp_fails_with_the_reason() {
    let (flows, stderr) = decode_failing(&[fixture("icmp_only.pcap")]);
    assert_eq!(flows, 0, "{stderr}");
    assert!(
        stderr.contains("icmp_only.pcap: 4 frames skipped: not UDP"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("icmp_only.pcap: no UDP datagram to decode in 4 frames (not UDP: 4 frames)"),
        "{stderr}"
    );
}

#[test]
fn an_unsupported_link_type_fails_with_the_reason() {
    let (flows, stderr) = decode_failing(&[fixture("user0_linktype147.pcap")]);
    assert_eq!(flows, 0, "{stderr}");
    assert!(
        stderr.contains("user0_linktype147.pcap: 3 frames skipped: link type 147 not supported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("user0_linktype147.pcap: no UDP datagram to decode in 3 frames"),
        "{stderr}"
    );
}

#[test]
fn an_empty_capture_among_good_ones_still_fails_after_decoding_them() {
    let (flows, stderr) = decode_failing(&[
        fixture("ethernet_lo.pcap"),
        fixture("user0_linktype147.pcap"),
    ]);
    assert_eq!(flows, 88, "the good capture's records\n{stderr}");
    assert!(stderr.contains("decoded 3 messages: 88 flows"), "{stderr}");
    assert!(
        stderr.contains("user0_linktype147.pcap: no UDP datagram to decode"),
        "{stderr}"
    );
    assert!(!stderr.contains("ethernet_lo.pcap: no UDP"), "{stderr}");
}

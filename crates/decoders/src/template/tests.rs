//! Template-engine behaviour through whole v9 and IPFIX messages built
//! here byte by byte: template lifetimes, scoping, waiting data, options.

use std::net::IpAddr;

use flowlink_flow::{Batch, IpAddr as WitIp};

use crate::netflow::NetflowDecoder;
use crate::template::TemplateConfig;

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A v9 datagram: header (uptime 10 s at unix 1_700_000_000) plus flowsets.
fn v9(source_id: u32, flowsets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&9u16.to_be_bytes());
    d.extend_from_slice(&(flowsets.len() as u16).to_be_bytes());
    d.extend_from_slice(&10_000u32.to_be_bytes());
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    d.extend_from_slice(&1u32.to_be_bytes());
    d.extend_from_slice(&source_id.to_be_bytes());
    for set in flowsets {
        d.extend_from_slice(set);
    }
    d
}

/// An IPFIX message with the given sets.
fn ipfix(domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut d = Vec::new();
    d.extend_from_slice(&10u16.to_be_bytes());
    d.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&domain.to_be_bytes());
    d.extend_from_slice(&body);
    d
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// A template record: id, then (field id, length) pairs (v9 or IANA IPFIX).
fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (field, len) in fields {
        t.extend_from_slice(&field.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    t
}

/// src v4, dst v4, packets (4), bytes (4), dst port.
const LAYOUT_A: &[(u16, u16)] = &[(8, 4), (12, 4), (2, 4), (1, 4), (11, 2)];
/// The same elements, other order and widths: bytes (8), packets (2), …
const LAYOUT_B: &[(u16, u16)] = &[(1, 8), (2, 2), (11, 2), (12, 4), (8, 4)];

fn record_a(src: [u8; 4], packets: u32, bytes: u32, port: u16) -> Vec<u8> {
    let mut r = src.to_vec();
    r.extend_from_slice(&[10, 9, 9, 9]);
    r.extend_from_slice(&packets.to_be_bytes());
    r.extend_from_slice(&bytes.to_be_bytes());
    r.extend_from_slice(&port.to_be_bytes());
    r
}

fn record_b(src: [u8; 4], packets: u16, bytes: u64, port: u16) -> Vec<u8> {
    let mut r = bytes.to_be_bytes().to_vec();
    r.extend_from_slice(&packets.to_be_bytes());
    r.extend_from_slice(&port.to_be_bytes());
    r.extend_from_slice(&[10, 9, 9, 9]);
    r.extend_from_slice(&src);
    r
}

fn run(decoder: &mut NetflowDecoder, exporter: &str, now_ms: u64, datagram: &[u8]) -> Batch {
    let mut batch = Batch::default();
    decoder
        .decode(ip(exporter), now_ms, datagram, &mut batch)
        .unwrap();
    batch
}

fn summary(batch: &Batch) -> Vec<(u32, u64, u64, u16)> {
    batch
        .flows
        .iter()
        .map(|f| {
            let WitIp::V4(src) = f.src else { panic!("v4") };
            (src, f.packets, f.bytes, f.dst_port)
        })
        .collect()
}

#[test]
fn template_in_one_datagram_data_in_a_later_one() {
    let mut d = NetflowDecoder::default();
    let first = run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    assert!(first.flows.is_empty() && first.rejected.is_empty());
    let data = run(
        &mut d,
        A,
        2000,
        &v9(
            1,
            &[set(
                300,
                &[
                    record_a([10, 0, 0, 1], 3, 300, 443),
                    record_a([10, 0, 0, 2], 4, 400, 80),
                ]
                .concat(),
            )],
        ),
    );
    assert_eq!(
        summary(&data),
        vec![(0x0a00_0001, 3, 300, 443), (0x0a00_0002, 4, 400, 80)]
    );
}

#[test]
fn data_before_its_template_waits_and_is_decoded_when_it_arrives() {
    let mut d = NetflowDecoder::default();
    let early = run(
        &mut d,
        A,
        1000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 3, 300, 443))]),
    );
    assert!(
        early.flows.is_empty() && early.rejected.is_empty(),
        "held, not guessed, not rejected"
    );
    let late = run(&mut d, A, 1500, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    assert_eq!(summary(&late), vec![(0x0a00_0001, 3, 300, 443)]);
}

#[test]
fn waiting_data_times_out_with_a_reject() {
    let config = TemplateConfig {
        pending_timeout_ms: 5_000,
        ..TemplateConfig::default()
    };
    let mut d = NetflowDecoder::new(config);
    run(
        &mut d,
        A,
        1000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 3, 300, 443))]),
    );
    let later = run(&mut d, A, 7000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    assert!(later.flows.is_empty(), "the expired set is not decoded");
    assert_eq!(later.rejected.len(), 1);
    assert!(
        later.rejected[0].reason.contains("no template within 5 s"),
        "{}",
        later.rejected[0].reason
    );
}

#[test]
fn waiting_data_is_bounded_per_exporter() {
    let config = TemplateConfig {
        pending_max_sets: 2,
        ..TemplateConfig::default()
    };
    let mut d = NetflowDecoder::new(config);
    let mut rejected = 0;
    for i in 0..5u8 {
        let b = run(
            &mut d,
            A,
            1000,
            &v9(1, &[set(300, &record_a([10, 0, 0, i], 1, 1, 1))]),
        );
        rejected += b.rejected.len();
    }
    assert_eq!(rejected, 3, "three sets pushed out");
    let late = run(&mut d, A, 1500, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    assert_eq!(
        summary(&late)
            .iter()
            .map(|f| f.0 & 0xff)
            .collect::<Vec<_>>(),
        vec![3, 4],
        "the newest two"
    );
}

#[test]
fn two_exporters_same_template_id_different_layouts() {
    let mut d = NetflowDecoder::default();
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    run(&mut d, B, 1000, &v9(1, &[set(0, &template(300, LAYOUT_B))]));
    let from_a = run(
        &mut d,
        A,
        1100,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 3, 300, 443))]),
    );
    let from_b = run(
        &mut d,
        B,
        1100,
        &v9(
            1,
            &[set(300, &record_b([10, 0, 0, 2], 5, 5_000_000_000, 53))],
        ),
    );
    assert_eq!(summary(&from_a), vec![(0x0a00_0001, 3, 300, 443)]);
    assert_eq!(summary(&from_b), vec![(0x0a00_0002, 5, 5_000_000_000, 53)]);
}

#[test]
fn source_id_scopes_templates_within_one_exporter() {
    let mut d = NetflowDecoder::default();
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    let other_domain = run(
        &mut d,
        A,
        1100,
        &v9(2, &[set(300, &record_a([10, 0, 0, 1], 3, 300, 443))]),
    );
    assert!(
        other_domain.flows.is_empty(),
        "source id 2 has no template 300 yet"
    );
}

#[test]
fn exporter_restart_with_a_changed_template_replaces_it() {
    let mut d = NetflowDecoder::default();
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    run(&mut d, A, 1100, &v9(1, &[set(0, &template(300, LAYOUT_B))]));
    let b = run(
        &mut d,
        A,
        1200,
        &v9(1, &[set(300, &record_b([10, 0, 0, 7], 2, 20, 22))]),
    );
    assert_eq!(summary(&b), vec![(0x0a00_0007, 2, 20, 22)]);
}

#[test]
fn templates_expire_without_refresh() {
    let config = TemplateConfig {
        template_timeout_ms: 10_000,
        ..TemplateConfig::default()
    };
    let mut d = NetflowDecoder::new(config);
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    let fresh = run(
        &mut d,
        A,
        9000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert_eq!(fresh.flows.len(), 1);
    let stale = run(
        &mut d,
        A,
        20_000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert!(stale.flows.is_empty(), "expired template is not used");
}

#[test]
fn a_template_sent_again_unchanged_lives_on_from_then() {
    let config = TemplateConfig {
        template_timeout_ms: 10_000,
        ..TemplateConfig::default()
    };
    let mut d = NetflowDecoder::new(config);
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    run(&mut d, A, 8000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    // 16 s after the first copy, 9 s after the second: still known.
    let renewed = run(
        &mut d,
        A,
        17_000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert_eq!(summary(&renewed), vec![(0x0a00_0001, 1, 1, 1)]);
    let stale = run(
        &mut d,
        A,
        18_001,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert!(
        stale.flows.is_empty(),
        "10 s after the last copy it expires"
    );
}

#[test]
fn an_unchanged_template_decodes_data_that_waited_through_a_restore() {
    let mut d = NetflowDecoder::default();
    let held = run(
        &mut d,
        A,
        1000,
        &v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert!(held.flows.is_empty(), "no template yet: the set waits");
    // Another worker's snapshot brings the template in; restoring decodes
    // nothing that waits.
    let mut other = NetflowDecoder::default();
    run(
        &mut other,
        A,
        1000,
        &v9(1, &[set(0, &template(300, LAYOUT_A))]),
    );
    d.templates
        .restore_state(&other.templates.save_state())
        .unwrap();
    // The exporter's next copy of the same template does.
    let resent = run(&mut d, A, 2000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    assert_eq!(summary(&resent), vec![(0x0a00_0001, 1, 1, 1)]);
}

#[test]
fn ipfix_withdrawal_forgets_the_template() {
    let mut d = NetflowDecoder::default();
    run(
        &mut d,
        A,
        1000,
        &ipfix(7, &[set(2, &template(400, LAYOUT_A))]),
    );
    let before = run(
        &mut d,
        A,
        1001,
        &ipfix(7, &[set(400, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert_eq!(before.flows.len(), 1);
    run(
        &mut d,
        A,
        1002,
        &ipfix(
            7,
            &[set(2, &[400u16.to_be_bytes(), 0u16.to_be_bytes()].concat())],
        ),
    );
    let after = run(
        &mut d,
        A,
        1003,
        &ipfix(7, &[set(400, &record_a([10, 0, 0, 1], 1, 1, 1))]),
    );
    assert!(after.flows.is_empty());
}

#[test]
fn ipfix_enterprise_and_variable_length_fields_are_skipped_by_length() {
    let mut d = NetflowDecoder::default();
    // src, a 6-byte enterprise field, a variable-length field, dst, packets (1 byte).
    let mut t = Vec::new();
    t.extend_from_slice(&500u16.to_be_bytes());
    t.extend_from_slice(&5u16.to_be_bytes());
    t.extend_from_slice(&[0, 8, 0, 4]);
    t.extend_from_slice(&[0x80, 0x10, 0, 6, 0, 0, 0x12, 0x34]);
    t.extend_from_slice(&[0, 82, 0xff, 0xff]);
    t.extend_from_slice(&[0, 12, 0, 4]);
    t.extend_from_slice(&[0, 2, 0, 1]);
    let mut records = Vec::new();
    records.extend_from_slice(&[
        10, 0, 0, 1, 1, 2, 3, 4, 5, 6, 3, b'e', b't', b'h', 10, 0, 0, 9, 7,
    ]);
    // A long-form variable-length field (255, then u16 length).
    records.extend_from_slice(&[
        10, 0, 0, 2, 1, 2, 3, 4, 5, 6, 255, 0, 2, b'x', b'y', 10, 0, 0, 9, 8,
    ]);
    records.extend_from_slice(&[0, 0]); // padding
    let b = run(
        &mut d,
        A,
        1000,
        &ipfix(1, &[set(2, &t), set(500, &records)]),
    );
    assert!(b.rejected.is_empty(), "{:?}", b.rejected);
    assert_eq!(
        summary(&b),
        vec![(0x0a00_0001, 7, 0, 0), (0x0a00_0002, 8, 0, 0)]
    );
}

#[test]
fn options_sampling_interval_applies_to_the_scope_s_flows() {
    let mut d = NetflowDecoder::default();
    // v9 options template 256: scope (system, 4 bytes), SAMPLING_INTERVAL (34, 4 bytes).
    let mut ot = Vec::new();
    ot.extend_from_slice(&256u16.to_be_bytes());
    ot.extend_from_slice(&4u16.to_be_bytes());
    ot.extend_from_slice(&4u16.to_be_bytes());
    ot.extend_from_slice(&[0, 1, 0, 4, 0, 34, 0, 4]);
    let options = [0u32.to_be_bytes(), 100u32.to_be_bytes()].concat();
    let b = run(
        &mut d,
        A,
        1000,
        &v9(
            1,
            &[
                set(1, &ot),
                set(256, &options),
                set(0, &template(300, LAYOUT_A)),
                set(300, &record_a([10, 0, 0, 1], 1, 1, 1)),
            ],
        ),
    );
    assert_eq!(b.flows.len(), 1, "options records are not flows");
    assert_eq!(b.flows[0].sampling_interval, 100);
    let other = run(
        &mut d,
        B,
        1000,
        &v9(
            1,
            &[
                set(0, &template(300, LAYOUT_A)),
                set(300, &record_a([10, 0, 0, 1], 1, 1, 1)),
            ],
        ),
    );
    assert_eq!(
        other.flows[0].sampling_interval, 1,
        "another exporter is unsampled"
    );
}

#[test]
fn bad_lengths_are_rejects_not_panics() {
    let mut d = NetflowDecoder::default();
    run(&mut d, A, 1000, &v9(1, &[set(0, &template(300, LAYOUT_A))]));
    // A flowset that claims more than the datagram holds.
    let mut lying = v9(1, &[set(300, &record_a([10, 0, 0, 1], 1, 1, 1))]);
    lying[22..24].copy_from_slice(&500u16.to_be_bytes());
    let b = run(&mut d, A, 1100, &lying);
    assert!(
        b.rejected[0].reason.contains("claims 500 bytes"),
        "{:?}",
        b.rejected
    );
    // A flowset length below its own header.
    let mut zero = v9(1, &[set(300, &[])]);
    zero[22..24].copy_from_slice(&0u16.to_be_bytes());
    let b = run(&mut d, A, 1100, &zero);
    assert!(b.rejected[0].reason.contains("less than its own header"));
    // A template of zero-length fields.
    let b = run(
        &mut d,
        A,
        1100,
        &v9(1, &[set(0, &template(301, &[(8, 0), (12, 0)]))]),
    );
    assert!(b.rejected[0].reason.contains("0 bytes"));
    // A template whose field count runs past the set.
    let mut t = template(302, LAYOUT_A);
    t[2..4].copy_from_slice(&60_000u16.to_be_bytes());
    let b = run(&mut d, A, 1100, &v9(1, &[set(0, &t)]));
    assert!(b.rejected[0].reason.contains("do not fit"));
    // Every prefix of a good datagram: no panic.
    let good = v9(
        1,
        &[
            set(0, &template(300, LAYOUT_A)),
            set(300, &record_a([10, 0, 0, 1], 1, 1, 1)),
        ],
    );
    for len in 0..good.len() {
        let mut batch = Batch::default();
        let _ = d.decode(ip(A), 1200, &good[..len], &mut batch);
    }
}

#[test]
fn state_survives_save_and_restore() {
    let mut d = NetflowDecoder::default();
    run(
        &mut d,
        A,
        1000,
        &ipfix(3, &[set(2, &template(400, LAYOUT_B))]),
    );
    let state = d.templates.save_state();
    let mut fresh = NetflowDecoder::default();
    fresh.templates.restore_state(&state).unwrap();
    let b = run(
        &mut fresh,
        A,
        1100,
        &ipfix(3, &[set(400, &record_b([10, 0, 0, 5], 9, 90, 25))]),
    );
    assert_eq!(summary(&b), vec![(0x0a00_0005, 9, 90, 25)]);
    assert!(fresh.templates.restore_state(b"nope").is_err());
    assert!(
        fresh
            .templates
            .restore_state(&state[..state.len() - 3])
            .is_err(),
        "truncated state"
    );
}

#[test]
fn template_count_is_bounded() {
    let config = TemplateConfig {
        max_templates: 3,
        ..TemplateConfig::default()
    };
    let mut d = NetflowDecoder::new(config);
    let sets: Vec<Vec<u8>> = (300..306)
        .map(|id| set(0, &template(id, LAYOUT_A)))
        .collect();
    let b = run(&mut d, A, 1000, &v9(1, &sets));
    assert_eq!(d.templates.template_count(), 3);
    assert_eq!(b.rejected.len(), 3);
    assert!(
        b.rejected[0].reason.contains("max_templates (3)"),
        "{}",
        b.rejected[0].reason
    );
    // Refreshing a known template is always allowed.
    let again = run(&mut d, A, 2000, &v9(1, &[set(0, &template(300, LAYOUT_B))]));
    assert!(again.rejected.is_empty());
}

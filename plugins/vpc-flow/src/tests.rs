use flowlink_plugin_sdk::{Action, Batch, Flow, IpAddr, Origin, Parser};

use crate::VpcFlowParser;

fn run(properties: &str, payload: &str) -> Batch {
    let mut parser = VpcFlowParser::open(properties).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Batch::default();
    let origin = Origin {
        exporter: IpAddr::V4(0),
        port: 0,
        received_ms: 0,
    };
    parser.parse(&origin, payload.as_bytes(), &mut out).unwrap();
    out
}

fn v4(text: &str) -> IpAddr {
    flowlink_plugin_sdk::ip_from_std(text.parse().unwrap())
}

/// Examples from the AWS documentation's "Flow log record examples".
#[test]
fn default_format_records() {
    let out = run(
        "{}",
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n\
         2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK\n\
         2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n\
         2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA\n\
         2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK\n\
         2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK",
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.flows.len(), 4);
    assert_eq!(
        out.skipped, 2,
        "NODATA and SKIPDATA are counted, not rejected"
    );
    assert_eq!(
        out.flows[0],
        Flow {
            src: v4("172.31.16.139"),
            dst: v4("172.31.16.21"),
            src_port: 20641,
            dst_port: 22,
            protocol: 6,
            packets: 20,
            bytes: 4249,
            start_ms: 1_418_530_010_000,
            end_ms: 1_418_530_070_000,
            action: Action::Accept,
            ..Flow::default()
        }
    );
    assert_eq!(out.flows[1].action, Action::Reject);
    assert!(out.flows[2].icmp_unknown, "VPC records have no ICMP type");
    assert!(matches!(out.flows[3].src, IpAddr::V6(_)));
}

#[test]
fn custom_format_with_packet_addresses_and_tcp_flags() {
    let format = r#"{"format": "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${bytes} ${packets} ${start} ${end} ${action} ${tcp-flags} ${log-status}", "addresses": "packet"}"#;
    let out = run(
        format,
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.1.5 10.0.0.220 39812 80 10.0.1.5 203.0.113.5 6 1500 5 1418530010 1418530070 ACCEPT 19 OK",
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.flows[0].dst, v4("203.0.113.5"));
    assert_eq!(
        (
            out.flows[0].bytes,
            out.flows[0].packets,
            out.flows[0].tcp_flags
        ),
        (1500, 5, 19)
    );
}

#[test]
fn header_line_sets_the_format() {
    let out = run(
        "{}",
        "version srcaddr dstaddr dstport protocol action log-status\n\
         5 10.0.0.1 10.0.0.2 443 6 ACCEPT OK",
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.flows[0].dst_port, 443);
}

#[test]
fn bad_records_are_rejected_with_the_field_and_the_rest_kept() {
    let out = run(
        "{}",
        "2 1 eni-1 10.0.0.1 10.0.0.2 1 22 6 1 1 1 2 ACCEPT OK\n\
         2 1 eni-1 10.0.0.999 10.0.0.2 1 22 6 1 1 1 2 ACCEPT OK\n\
         2 1 eni-1 10.0.0.1 10.0.0.2 1 22 tcp 1 1 1 2 ACCEPT OK\n\
         2 1 eni-1 10.0.0.1 10.0.0.2 1 22 6 1 1 1 2 MAYBE OK\n\
         2 1 eni-1 10.0.0.1 10.0.0.2 1 22 6 1 1 1 ACCEPT OK",
    );
    assert_eq!(out.flows.len(), 1);
    let reasons: Vec<_> = out
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4);
    assert!(reasons[0].1.starts_with("srcaddr:"), "{reasons:?}");
    assert!(reasons[1].1.starts_with("protocol:"), "{reasons:?}");
    assert!(reasons[2].1.starts_with("action:"), "{reasons:?}");
    assert!(
        reasons[3]
            .1
            .starts_with("13 fields where the format has 14"),
        "{reasons:?}"
    );
    assert_eq!(reasons[3].0, 4);
}

#[test]
fn config_errors() {
    let err = |p: &str| VpcFlowParser::open(p).err().expect(p);
    assert!(err(r#"{"format": "${srcaddr} ${dstaddr} ${bogus}"}"#).contains("bogus"));
    assert!(err(r#"{"addresses": "nat"}"#).contains("nat"));
    assert!(err(r#"{"addresses": "packet"}"#).contains("pkt-srcaddr"));
    assert!(err(r#"{"fromat": "x"}"#).contains("fromat"));
}

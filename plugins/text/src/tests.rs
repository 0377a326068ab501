//! The plugin as the host drives it: properties JSON in, lines in, flows
//! and rejects out.

use flowlink_plugin_sdk::{Action, Batch, Flow, IpAddr, Origin, Parser};

use crate::TextParser;

const RECEIVED: u64 = 1_795_867_200_000;

fn run(properties: &str, payload: &str) -> Batch {
    let mut parser = TextParser::open(properties).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Batch::default();
    let origin = Origin {
        exporter: IpAddr::V4(0x7f00_0001),
        port: 514,
        received_ms: RECEIVED,
    };
    parser.parse(&origin, payload.as_bytes(), &mut out).unwrap();
    out
}

fn v4(text: &str) -> IpAddr {
    flowlink_plugin_sdk::ip_from_std(text.parse().unwrap())
}

#[test]
fn flowlink_kv_config_without_mode() {
    let properties = r#"{"src_ip":"sip","dst_ip":"dip","dst_port":"dport","proto":"prot",
        "timestamp":"time","timestamp_format":"mmm dd yyyy HH:MM:SS"}"#;
    let out = run(
        properties,
        "<13>Nov 28 13:00:00 fw1 flow: time=\"Nov 28 2026 12:00:00\" sip=10.0.0.1 dip=10.0.0.2 dport=443 prot=tcp\n\
         garbage line\n\
         sip=10.0.0.3 dip=10.0.0.2 dport=https prot=6\n\
         sip=10.0.0.4 dip=10.0.0.2 dport=22 prot=17",
    );
    assert_eq!(out.flows.len(), 2, "{:?}", out.rejected);
    assert_eq!(
        out.flows[0],
        Flow {
            src: v4("10.0.0.1"),
            dst: v4("10.0.0.2"),
            dst_port: 443,
            protocol: 6,
            start_ms: RECEIVED,
            end_ms: RECEIVED,
            ..Flow::default()
        }
    );
    assert_eq!(out.flows[1].src, v4("10.0.0.4"));
    assert_eq!(out.rejected.len(), 2);
    assert_eq!(out.rejected[0].index, 1);
    assert!(
        out.rejected[0]
            .reason
            .contains("field src_ip (key sip): missing"),
        "{}",
        out.rejected[0].reason
    );
    assert!(out.rejected[0].reason.contains("garbage line"));
    assert_eq!(out.rejected[1].index, 2);
    assert!(
        out.rejected[1].reason.contains("dst_port (key dport)"),
        "{}",
        out.rejected[1].reason
    );
}

#[test]
fn delimited_with_header_defaults_and_syslog_prefix() {
    let properties = r#"{"mode":"delimited","separator":",","header":true,"strip_syslog_prefix":true,
        "src_ip":"src","dst_ip":"dst","dst_port":"port","packets":"pkts","action":"verdict",
        "defaults":{"protocol":"udp","packets":1}}"#;
    let out = run(
        properties,
        "<13>1 2026-11-28T12:00:00Z host app - - - verdict,src,dst,port,pkts\n\
         <13>1 2026-11-28T12:00:00Z host app - - - allow,10.0.0.1,10.0.0.2,53,7\n\
         deny,10.0.0.1,10.0.0.9,53,\n\
         deny,10.0.0.1\n",
    );
    assert_eq!(out.flows.len(), 2, "{:?}", out.rejected);
    assert_eq!(out.flows[0].packets, 7);
    assert_eq!(out.flows[0].protocol, 17);
    assert_eq!(out.flows[0].action, Action::Accept);
    assert_eq!(out.flows[1].packets, 1, "an empty cell takes the default");
    assert_eq!(out.flows[1].action, Action::Reject);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 3);
}

#[test]
fn regex_mode_ipv6_and_icmp() {
    let properties = r#"{"mode":"regex",
        "regex":"^(?P<action>\\w+) (?P<protocol>\\S+) (?P<src_ip>\\S+) -> (?P<dst_ip>\\S+)(?: type (?P<t>\\d+))?$",
        "icmp_type":"t"}"#;
    let out = run(
        properties,
        "ACCEPT icmp 10.0.0.1 -> 10.0.0.2 type 8\nREJECT ipv6-icmp 2001:db8::1 -> 2001:db8::2\nACCEPT tcp 10.0.0.1 -> 2001:db8::2\nnope",
    );
    assert_eq!(out.flows.len(), 2, "{:?}", out.rejected);
    assert_eq!(
        (out.flows[0].icmp_type, out.flows[0].icmp_unknown),
        (8, false)
    );
    assert!(matches!(out.flows[1].src, IpAddr::V6(_)));
    assert!(
        out.flows[1].icmp_unknown,
        "no type captured: unknown, not echo reply"
    );
    assert_eq!(out.rejected.len(), 2);
    assert!(
        out.rejected[0]
            .reason
            .contains("different address families")
    );
    assert!(out.rejected[1].reason.contains("does not match the regex"));
}

#[test]
fn json_mode_lines_and_arrays() {
    let properties = r#"{"mode":"json","src_ip":"src.addr","dst_ip":"dst.addr","dst_port":"dst.port",
        "protocol":"proto","bytes":"bytes","timestamp":"ts","timestamp_format":"epoch_ms"}"#;
    let out = run(
        properties,
        r#"{"src":{"addr":"10.0.0.1"},"dst":{"addr":"10.0.0.2","port":8443},"proto":"tcp","bytes":1500,"ts":1795867200123}
[{"src":{"addr":"10.0.0.3"},"dst":{"addr":"10.0.0.2","port":80},"proto":6},{"src":{},"dst":{}}]
{not json"#,
    );
    assert_eq!(out.flows.len(), 2, "{:?}", out.rejected);
    assert_eq!(out.flows[0].bytes, 1500);
    assert_eq!(out.flows[0].start_ms, RECEIVED + 123);
    assert_eq!(out.flows[1].dst_port, 80);
    assert_eq!(out.rejected.len(), 2);
    assert_eq!(out.rejected[0].index, 1);
    assert!(
        out.rejected[0].reason.contains("path src.addr"),
        "{}",
        out.rejected[0].reason
    );
    assert!(out.rejected[1].reason.contains("not JSON"));
}

#[test]
fn config_errors_name_the_property() {
    let err = |properties: &str| TextParser::open(properties).err().expect(properties);
    assert!(err(r#"{"src_ip":"a","dst_ip":"b","protocl":"p"}"#).contains("\"protocl\""));
    assert!(err(r#"{"src_ip":"a","dst_ip":"b"}"#).contains("protocol is not mapped"));
    assert!(err(r#"{"mode":"csv"}"#).contains("csv"));
    assert!(err(r#"{"mode":"regex","regex":"(?P<src_ip>"}"#).contains("does not compile"));
    assert!(
        err(r#"{"src_ip":"a","dst_ip":"b","protocol":"p","separator":";"}"#)
            .contains("applies to mode delimited")
    );
    assert!(
        err(r#"{"src_ip":"a","dst_ip":"b","protocol":"p","timestamp_format":"%Q"}"#).contains("%Q")
    );
    assert!(
        err(r#"{"src_ip":"a","dst_ip":"b","protocol":"p","defaults":{"port":1}}"#)
            .contains("\"port\"")
    );
    assert!(
        err(r#"{"mode":"delimited","src_ip":"a","dst_ip":1,"protocol":2}"#).contains("no header")
    );
}

#[test]
fn header_survives_a_hot_swap() {
    let properties =
        r#"{"mode":"delimited","header":true,"src_ip":"s","dst_ip":"d","protocol":"p"}"#;
    let mut old = TextParser::open(properties).unwrap();
    let origin = Origin {
        exporter: IpAddr::V4(0),
        port: 0,
        received_ms: RECEIVED,
    };
    old.parse(&origin, b"p,d,s", &mut Batch::default()).unwrap();
    let mut new = TextParser::open(properties).unwrap();
    new.restore_state(&old.save_state()).unwrap();
    let mut out = Batch::default();
    new.parse(&origin, b"6,10.0.0.2,10.0.0.1", &mut out)
        .unwrap();
    assert_eq!(out.flows.len(), 1, "{:?}", out.rejected);
    assert_eq!(out.flows[0].src, v4("10.0.0.1"));
}

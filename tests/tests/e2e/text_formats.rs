//! The `text` parser's delimited, regex and json modes through the running
//! daemon (lines over a TCP connection): good lines reach the PCE emulator,
//! each bad line is rejected with the field and the reason, and nothing
//! else is lost. (`kv` is covered with a real syslog client in
//! syslog_text.rs.)

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use flowlink_e2e::records::expected_totals;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, assert_totals, free_tcp_port, scrape, wait_for,
};

/// Sends `lines` over one connection to a daemon parsing them with
/// `properties`; checks the flows of `good`, the reject count, and that
/// every `reason` is in the log.
fn run_mode(
    name: &str,
    properties: &str,
    lines: &[String],
    good: &[(u8, u8, u64, u64)],
    reasons: &[&str],
) {
    let emulator = Emulator::start();
    let port = free_tcp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let mut daemon = Daemon::start(
        name,
        &DaemonConfig::new(&emulator, name, "text")
            .connector(&format!(
                "{{ type: tcp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1, framing: newline }} }}"
            ))
            .parser_with(&format!("properties: {properties}"))
            .metrics(&metrics)
            .yaml(),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for line in lines {
        // Odd-sized writes: lines cross reads.
        for piece in format!("{line}\n").as_bytes().chunks(37) {
            stream.write_all(piece).unwrap();
        }
    }
    drop(stream);
    let expected = expected_totals(good, "172.16.0.80", 8080, 6);
    assert_totals(&emulator, &daemon, &expected, "text_formats");
    let rejected = wait_for(Duration::from_secs(10), || {
        scrape(&metrics)
            .get(&format!(
                "flowlink_records_rejected_total{{consumer=\"{name}\"}}"
            ))
            .copied()
            .filter(|n| *n == reasons.len() as u64)
    });
    assert!(
        rejected.is_some(),
        "{name}: rejects {:?}\n{}",
        scrape(&metrics),
        daemon.log()
    );
    for reason in reasons {
        daemon.wait_log(reason, 1);
    }
    assert!(daemon.terminate().success());
}

fn good(net: u8) -> Vec<(u8, u8, u64, u64)> {
    (1..=12)
        .map(|h| (net, h, u64::from(h), 90 * u64::from(h)))
        .collect()
}

#[test]
fn delimited_with_a_header_and_bad_lines() {
    let records = good(1);
    let mut lines = vec!["verdict;src;sport;dst;dport;proto;pkts;bytes".to_owned()];
    lines.extend(
        records
            .iter()
            .map(|(n, h, p, b)| format!("permit;10.{n}.0.{h};40000;172.16.0.80;8080;tcp;{p};{b}")),
    );
    lines.insert(
        4,
        "permit;10.1.0.77;40000;172.16.0.80;eighty;tcp;1;1".to_owned(),
    );
    lines.push("permit;10.1.0.78".to_owned());
    run_mode(
        "delimited",
        "{ mode: delimited, separator: \";\", header: true, action: verdict, src_ip: src, src_port: sport, dst_ip: dst, dst_port: dport, protocol: proto, packets: pkts, bytes: bytes }",
        &lines,
        &records,
        &[
            r#"field dst_port (column "dport"): "eighty" is not a port number"#,
            "dst_ip: column 3 is missing (the line has 2 columns)",
        ],
    );
}

#[test]
fn regex_with_bad_lines() {
    let records = good(2);
    let mut lines: Vec<String> = records
        .iter()
        .map(|(n, h, p, b)| format!("Nov 28 12:00:00 fw1 conn ALLOW TCP 10.{n}.0.{h}:40000 > 172.16.0.80:8080 packets={p} octets={b}"))
        .collect();
    lines.insert(3, "Nov 28 12:00:00 fw1 heartbeat ok".to_owned());
    lines.insert(
        6,
        "Nov 28 12:00:00 fw1 conn ALLOW XTP 10.2.0.99:40000 > 172.16.0.80:8080 packets=1 octets=1"
            .to_owned(),
    );
    run_mode(
        "regex",
        r#"{ mode: regex, regex: 'conn (?P<action>\w+) (?P<protocol>\w+) (?P<src_ip>[\d.]+):(?P<src_port>\d+) > (?P<dst_ip>[\d.]+):(?P<dst_port>\d+) packets=(?P<p>\d+) octets=(?P<o>\d+)', packets: p, bytes: o }"#,
        &lines,
        &records,
        &[
            "the line does not match the regex",
            r#"field protocol (group protocol): "XTP" is not a protocol number or name"#,
        ],
    );
}

#[test]
fn json_with_bad_lines() {
    let records = good(3);
    let mut lines: Vec<String> = records
        .iter()
        .map(|(n, h, p, b)| {
            format!(r#"{{"event":{{"src":{{"ip":"10.{n}.0.{h}","port":40000}},"dst":{{"ip":"172.16.0.80","port":8080}},"proto":"tcp","counters":[{p},{b}]}}}}"#)
        })
        .collect();
    lines.insert(
        2,
        r#"{"event":{"src":{"ip":"10.3.0.50"},"dst":{"ip":"172.16.0.80","port":8080}}}"#.to_owned(),
    );
    lines.insert(5, r#"{"event": "#.to_owned());
    run_mode(
        "json",
        "{ mode: json, src_ip: event.src.ip, src_port: event.src.port, dst_ip: event.dst.ip, dst_port: event.dst.port, protocol: event.proto, packets: event.counters.0, bytes: event.counters.1 }",
        &lines,
        &records,
        &["field protocol (path event.proto): missing", "not JSON"],
    );
}

//! `key=value` firewall lines sent by util-linux `logger` (a real syslog
//! client) over TCP (newline and RFC 6587 octet-counted framing) and UDP,
//! parsed by the `text` plugin: the good lines reach the PCE emulator, the
//! bad one is rejected with its reason in the log.

use std::io::Write;
use std::process::{Command, Stdio};

use flowlink_e2e::records::{KV_PROPERTIES, expected_totals, kv_record};
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, assert_totals, free_tcp_port, free_udp_port, scrape,
};

/// Sends each line as one syslog message with `logger ARGS`.
fn logger(args: &[&str], lines: &[String]) {
    let mut child = Command::new("logger")
        .args(args)
        .args(["-t", "fw"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("running logger (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "logger {args:?} failed");
}

#[test]
fn kv_lines_from_logger_over_tcp_and_udp() {
    let emulator = Emulator::start();
    let tcp = free_tcp_port();
    let udp = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let mut daemon = Daemon::start(
        "syslog",
        &DaemonConfig::new(&emulator, "syslog", "text")
            .connector(&format!(
                "{{ type: tcp, properties: {{ ports: \"{tcp}\", listen_address: 127.0.0.1 }} }}"
            ))
            .udp(udp)
            .parser_with(KV_PROPERTIES)
            .metrics(&metrics)
            .yaml(),
    );
    let port = |p: u16| p.to_string();
    let mut sent = Vec::new();
    let mut batch = |net: u8, count: u8| -> Vec<String> {
        (1..=count)
            .map(|host| {
                let record = (net, host, u64::from(host), 100 * u64::from(host));
                sent.push(record);
                kv_record(record.0, record.1, record.2, record.3)
            })
            .collect()
    };
    // TCP, newline framing (logger's default), RFC 5424 header.
    let mut lines = batch(1, 20);
    lines.insert(
        7,
        "action=allow sip=10.1.0.999 dip=172.16.0.53 dport=53 prot=udp".to_owned(),
    );
    logger(&["-n", "127.0.0.1", "-P", &port(tcp), "-T"], &lines);
    // TCP, octet counting, RFC 3164 header.
    logger(
        &[
            "-n",
            "127.0.0.1",
            "-P",
            &port(tcp),
            "-T",
            "--octet-count",
            "--rfc3164",
        ],
        &batch(2, 20),
    );
    // UDP.
    logger(&["-n", "127.0.0.1", "-P", &port(udp), "-d"], &batch(3, 20));

    let expected = expected_totals(&sent, "172.16.0.53", 53, 17);
    assert_totals(&emulator, &daemon, &expected, "syslog_text");
    let counters = scrape(&metrics);
    assert_eq!(
        counters["flowlink_records_rejected_total{consumer=\"syslog\"}"],
        1
    );
    assert_eq!(
        counters["flowlink_flows_parsed_total{consumer=\"syslog\"}"],
        60
    );
    // The reject names the field, the key and the value.
    daemon.wait_log(
        r#"record rejected: field src_ip (key sip): "10.1.0.999" is not an IP address"#,
        1,
    );
    assert!(daemon.terminate().success());
}

/// FlowLink's own text configurations map no source port. Such records are
/// keyed as reported — `sip → dip:dport/proto` — whatever the destination
/// port (well-known, registered, ephemeral): an unknown source port is
/// never taken for the service.
#[test]
fn flowlink_style_lines_without_a_source_port_keep_their_direction() {
    let emulator = Emulator::start();
    let tcp = free_tcp_port();
    let udp = free_udp_port();
    let mut daemon = Daemon::start(
        "syslog-nosport",
        &DaemonConfig::new(&emulator, "fw", "text")
            .connector(&format!(
                "{{ type: tcp, properties: {{ ports: \"{tcp}\", listen_address: 127.0.0.1 }} }}"
            ))
            .udp(udp)
            .parser_with("properties: { src_ip: src, dst_ip: dst, dst_port: dpt, proto: proto }")
            .yaml(),
    );
    // (source, destination, destination port, protocol name, number)
    let records = [
        ("10.7.0.1", "10.8.0.1", 443, "tcp", 6),
        ("10.7.0.2", "10.8.0.2", 53, "udp", 17),
        ("10.7.0.3", "10.8.0.3", 8080, "tcp", 6),
        ("10.7.0.4", "10.8.0.4", 51000, "udp", 17),
        ("10.7.0.5", "10.8.0.5", 3000, "tcp", 6),
        ("10.7.0.6", "10.8.0.6", 22, "tcp", 6),
    ];
    let line = |r: &(&str, &str, u16, &str, u8)| {
        format!(
            "fw01 traffic src={} dst={} dpt={} proto={}",
            r.0, r.1, r.2, r.3
        )
    };
    let (over_tcp, over_udp) = records.split_at(3);
    logger(
        &["-n", "127.0.0.1", "-P", &tcp.to_string(), "-T"],
        &over_tcp.iter().map(line).collect::<Vec<_>>(),
    );
    logger(
        &["-n", "127.0.0.1", "-P", &udp.to_string(), "-d"],
        &over_udp.iter().map(line).collect::<Vec<_>>(),
    );
    let mut expected = flowlink_e2e::process::Totals::new();
    for (src, dst, port, _, protocol) in records {
        // One connection each; the lines carry no packet or byte counts.
        expected.insert((src.to_owned(), dst.to_owned(), port, protocol), (1, 0, 0));
    }
    assert_totals(&emulator, &daemon, &expected, "no source port");
    assert!(daemon.terminate().success());
}

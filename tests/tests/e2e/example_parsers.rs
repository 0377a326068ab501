//! The parser sections of every configuration in `examples/`, taken from
//! the files as shipped, run through the daemon on records written for
//! them; the emulator must hold the keys a reader of the record expects,
//! key by key. Transport settings (ports, brokers, PCE) are the test's own.

use flowlink_e2e::process::Totals;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, assert_totals, expected_aggregation, free_udp_port,
    read_flows_csv, repo_root, send_capture, temp_dir,
};
use serde_yaml_ng::Value;

/// The `parser` of consumer `consumer` in `examples/file`.
fn example_parser(file: &str, consumer: &str) -> (String, Option<serde_json::Value>) {
    let path = repo_root().join("examples").join(file);
    let config: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let consumers = config["consumers"].as_sequence().expect("consumers");
    let entry = consumers
        .iter()
        .find(|c| c["name"].as_str() == Some(consumer))
        .unwrap_or_else(|| panic!("{file} has no consumer {consumer}"));
    let parser = &entry["parser"];
    let kind = parser["type"].as_str().unwrap().to_owned();
    let properties = parser
        .get("properties")
        .map(|p| serde_json::to_value(p).unwrap());
    (kind, properties)
}

/// `(src, dst, dst_port, protocol, (connections, packets, bytes))`.
type ExpectedKey<'a> = (&'a str, &'a str, u16, u8, (u64, u64, u64));

/// Runs the example's parser on `lines`, read from a file, and waits for
/// the emulator to hold exactly `expected`.
fn run_on_lines(file: &str, consumer: &str, lines: &[&str], expected: &[ExpectedKey]) {
    let (kind, properties) = example_parser(file, consumer);
    let emulator = Emulator::start();
    let dir = temp_dir(&format!("example-{consumer}"));
    let input = dir.join("input.log");
    std::fs::write(
        &input,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let mut config = DaemonConfig::new(&emulator, consumer, &kind).connector(&format!(
        "{{ type: file, properties: {{ path: \"{}\", start_position: beginning }} }}",
        input.display()
    ));
    if let Some(properties) = properties {
        config = config.parser_with(&format!("properties: {properties}"));
    }
    let mut daemon = Daemon::start_in(&dir, &config.yaml());
    let mut totals = Totals::new();
    for (src, dst, port, protocol, counts) in expected {
        totals.insert(
            ((*src).to_owned(), (*dst).to_owned(), *port, *protocol),
            *counts,
        );
    }
    assert_totals(&emulator, &daemon, &totals, &format!("{file} {consumer}"));
    assert!(daemon.terminate().success());
}

#[test]
fn syslog_firewall_example() {
    run_on_lines(
        "syslog-firewall.yaml",
        "firewall",
        &[
            "<134>Nov 30 10:00:00 fw01 traffic: sip=10.0.0.5 sport=51000 dip=10.0.1.20 dport=443 prot=tcp action=allow",
            // The server's answer folds into the client's key.
            "<134>Nov 30 10:00:01 fw01 traffic: sip=10.0.1.20 sport=443 dip=10.0.0.5 dport=51000 prot=tcp action=allow",
            "<134>Nov 30 10:00:02 fw01 traffic: sip=10.0.0.6 sport=40000 dip=10.0.1.53 dport=53 prot=udp action=allow",
            // No source port: as reported.
            "<134>Nov 30 10:00:03 fw01 traffic: sip=10.0.0.7 dip=10.0.1.80 dport=8080 prot=tcp action=allow",
        ],
        &[
            ("10.0.0.5", "10.0.1.20", 443, 6, (2, 2, 0)),
            ("10.0.0.6", "10.0.1.53", 53, 17, (1, 1, 0)),
            ("10.0.0.7", "10.0.1.80", 8080, 6, (1, 1, 0)),
        ],
    );
}

/// Version 5 custom format with `addresses: packet`: the key uses
/// pkt-srcaddr / pkt-dstaddr (AWS: the original source behind a NAT
/// gateway or a load balancer), not the interface's addresses.
#[test]
fn vpc_cloudwatch_example_custom_format_with_packet_addresses() {
    run_on_lines(
        "vpc-flow-logs.yaml",
        "vpc-cloudwatch",
        &[
            "5 vpc-1 subnet-1 i-1 eni-1 123456789012 IPv4 10.0.0.5 10.0.1.20 51000 443 192.168.0.5 10.0.1.20 6 3000 10 1795867200 1795867260 ACCEPT 2 OK ingress -",
            "5 vpc-1 subnet-1 i-1 eni-1 123456789012 IPv4 10.0.1.20 10.0.0.5 443 51000 10.0.1.20 192.168.0.5 6 9000 12 1795867200 1795867260 ACCEPT 18 OK egress 1",
            "5 vpc-1 subnet-1 - eni-2 123456789012 IPv4 10.0.0.9 10.0.1.9 - - 10.0.0.9 10.0.1.9 1 336 4 1795867200 1795867260 REJECT - OK ingress -",
        ],
        &[
            ("192.168.0.5", "10.0.1.20", 443, 6, (2, 22, 12000)),
            // ICMP without a type (VPC logs carry none): as reported.
            ("10.0.0.9", "10.0.1.9", 0, 1, (1, 4, 336)),
        ],
    );
}

#[test]
fn vpc_default_format_examples() {
    for consumer in ["vpc-kafka", "vpc-files"] {
        run_on_lines(
            "vpc-flow-logs.yaml",
            consumer,
            &[
                "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
                "2 123456789012 eni-0a1b2c3d 10.0.0.5 10.0.1.20 51000 5432 6 10 3000 1795867200 1795867260 ACCEPT OK",
                "2 123456789012 eni-0a1b2c3d 10.0.1.20 10.0.0.5 5432 51000 6 8 8000 1795867200 1795867260 ACCEPT OK",
                "2 123456789012 eni-0a1b2c3d 10.0.0.9 10.0.1.9 - - 1 4 336 1795867200 1795867260 ACCEPT OK",
                "2 123456789012 eni-0a1b2c3d - - - - - - - 1795867200 1795867260 - NODATA",
            ],
            &[
                ("10.0.0.5", "10.0.1.20", 5432, 6, (2, 18, 11000)),
                ("10.0.0.9", "10.0.1.9", 0, 1, (1, 4, 336)),
            ],
        );
    }
}

/// The quick start's NetFlow parser on softflowd's v5 export, against
/// tshark's decoding of the same datagrams.
#[test]
fn quickstart_example() {
    let (kind, properties) = example_parser("quickstart.yaml", "netflow");
    assert_eq!((kind.as_str(), properties), ("netflow", None));
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut daemon = Daemon::start(
        "example-quickstart",
        &DaemonConfig::new(&emulator, "netflow", &kind)
            .udp(port)
            .yaml(),
    );
    send_capture("softflowd_v5", port);
    assert_totals(
        &emulator,
        &daemon,
        &expected_aggregation(&read_flows_csv("softflowd_v5")),
        "quickstart",
    );
    assert!(daemon.terminate().success());
}

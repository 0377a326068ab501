//! A broken configuration fails fast, naming the key and the file.

use flowlink_e2e::{plugin_dir, run_flowlink, temp_dir};

fn good_config() -> String {
    format!(
        r#"pce_addr: 127.0.0.1:8443
api_key: "k:s"
data_directory: data
plugin_dir: {}
consumers:
  - name: edge
    connectors:
      - type: udp
        properties:
          ports: "2055"
    parser:
      type: netflow
"#,
        plugin_dir().display()
    )
}

/// Runs `check-config` and `run` on `yaml`; both must fail with a message
/// containing every string in `expect`. Returns check-config's stderr.
fn assert_rejected(name: &str, yaml: &str, expect: &[&str]) -> String {
    let dir = temp_dir(name);
    let file = dir.join("broken.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut first = None;
    for command in ["check-config", "run"] {
        let out = run_flowlink(&[command, "--config", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{command} accepted a broken config ({name})"
        );
        assert!(
            stderr.contains(file.to_str().unwrap()),
            "{command}: the file is named: {stderr}"
        );
        for needle in expect {
            assert!(
                stderr.contains(needle),
                "{command}: expected {needle:?} in: {stderr}"
            );
        }
        first.get_or_insert(stderr);
    }
    first.unwrap()
}

#[test]
fn the_good_config_passes_check_config() {
    let dir = temp_dir("good-config");
    let file = dir.join("flowlink.yaml");
    std::fs::write(&file, good_config()).unwrap();
    let out = run_flowlink(&["check-config", "--config", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 consumers)"));
}

#[test]
fn unknown_key_is_named() {
    let yaml = good_config().replace("data_directory:", "data_directroy:");
    assert_rejected("unknown-key", &yaml, &["unknown field `data_directroy`"]);
}

#[test]
fn unknown_key_inside_a_consumer_gives_its_path() {
    let yaml = good_config().replace("type: netflow", "type: netflow\n      propertes: {}");
    assert_rejected(
        "unknown-nested",
        &yaml,
        &["consumers[0].parser", "unknown field `propertes`"],
    );
}

#[test]
fn missing_pce_addr_is_named() {
    let yaml = good_config().replace("pce_addr: 127.0.0.1:8443\n", "");
    assert_rejected("missing-pce", &yaml, &["missing field `pce_addr`"]);
}

#[test]
fn window_out_of_range_is_named_with_its_bounds() {
    let yaml = format!("aggregation_minutes: 2\n{}", good_config());
    assert_rejected(
        "window",
        &yaml,
        &["aggregation_minutes: must be between 5 and 60, got 2"],
    );
    let yaml = format!("aggregation_seconds: 0\n{}", good_config());
    assert_rejected(
        "window-s",
        &yaml,
        &["aggregation_seconds: must be between 1 and 3600, got 0"],
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let yaml = format!(
        "aggregation_minutes: 99\nfile_retention_hours: 1\n{}",
        good_config()
    )
    .replace("ports: \"2055\"", "ports: \"2055,http\"");
    let stderr = assert_rejected(
        "many",
        &yaml,
        &[
            "aggregation_minutes",
            "file_retention_hours",
            "consumers[0].connectors[0].properties.ports",
            "\"http\"",
        ],
    );
    assert!(
        stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count()
            >= 3,
        "{stderr}"
    );
}

#[test]
fn missing_plugin_is_named_with_what_was_found() {
    let yaml = good_config().replace("type: netflow", "type: netflow9000");
    assert_rejected(
        "missing-plugin",
        &yaml,
        &[
            "consumers[0].parser.type",
            "no plugin named \"netflow9000\"",
            "(loaded: ipfix, netflow, sflow, text, vpc-flow)",
        ],
    );
}

#[test]
fn plugin_refusing_its_properties_names_the_consumer() {
    let yaml = good_config().replace(
        "type: netflow",
        "type: netflow\n      properties: {templat_timeout: 5}",
    );
    assert_rejected(
        "bad-properties",
        &yaml,
        &["consumer \"edge\"", "templat_timeout"],
    );
}

#[test]
fn unreadable_api_key_file_is_named() {
    let yaml = good_config().replace(
        "api_key: \"k:s\"",
        "api_key: \"$cat /nonexistent/flowlink.key\"",
    );
    assert_rejected("api-key", &yaml, &["api_key", "/nonexistent/flowlink.key"]);
}

#[test]
fn a_metrics_port_in_use_stops_the_start_naming_the_key() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = temp_dir("metrics-busy");
    let file = dir.join("flowlink.yaml");
    let yaml = good_config()
        .replace(
            "\"2055\"",
            &format!("\"{}\"", flowlink_e2e::free_udp_port()),
        )
        .replace(
            "data_directory: data",
            &format!("data_directory: data\nmetrics_listen: {addr}"),
        );
    std::fs::write(&file, yaml).unwrap();
    let out = run_flowlink(&["run", "--config", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("metrics_listen {addr}: cannot bind")),
        "{stderr}"
    );
}

#[test]
fn consumer_names_are_plain_words() {
    let yaml = good_config().replace("name: edge", "name: 'edge \"1\"'");
    assert_rejected(
        "consumer-name",
        &yaml,
        &["consumers[0].name", "letters, digits"],
    );
}

#[test]
fn text_parser_errors_name_the_consumer_and_the_property() {
    let text = |properties: &str| {
        good_config().replace(
            "type: netflow",
            &format!("type: text\n      properties: {properties}"),
        )
    };
    assert_rejected(
        "text-bad-regex",
        &text(r#"{mode: regex, regex: "(?P<src_ip>[0-9.+"}"#),
        &["consumer \"edge\"", "regex does not compile"],
    );
    assert_rejected(
        "text-unknown-field",
        &text("{src_ip: sip, dst_ip: dip, protocol: p, dst_prot: dport}"),
        &["consumer \"edge\"", "unknown property \"dst_prot\""],
    );
    assert_rejected(
        "text-bad-time-format",
        &text(
            "{src_ip: sip, dst_ip: dip, protocol: p, timestamp: t, timestamp_format: \"mmm dd qqqq\"}",
        ),
        &["consumer \"edge\"", "timestamp_format"],
    );
    assert_rejected(
        "vpc-bad-format",
        &good_config().replace(
            "type: netflow",
            "type: vpc-flow\n      properties: {format: \"${srcaddr} ${dstaddr} ${dstprt}\"}",
        ),
        &[
            "consumer \"edge\"",
            "\"dstprt\" is not a VPC flow log field",
        ],
    );
}

#[test]
fn connector_problems_are_listed_with_their_paths() {
    let yaml = good_config().replace(
        "      - type: udp\n        properties:\n          ports: \"2055\"\n",
        r#"      - type: kafka
        properties: { brokers: "", group_id: " ", properties: { group.id: x } }
      - type: aws
        properties: { region: eu-west-1, log_group: g, log_stream_prefix: a, log_streams: [b], poll_seconds: 0, endpoint_url: "not a url" }
      - type: tcp
        properties: { ports: "6514", framing: octet_counting, max_connections: 0 }
"#,
    );
    assert_rejected(
        "connectors",
        &yaml,
        &[
            "consumers[0].connectors[0].properties.brokers: needs at least one host:port",
            "consumers[0].connectors[0].properties: needs topics or topic_pattern",
            "consumers[0].connectors[0].properties.group_id: must not be empty",
            "consumers[0].connectors[0].properties.properties.group.id: is set by flowlink",
            "consumers[0].connectors[1].properties: give log_stream_prefix or log_streams, not both",
            "consumers[0].connectors[1].properties.poll_seconds: must be between 1 and 3600, got 0",
            "consumers[0].connectors[1].properties.endpoint_url",
            "consumers[0].connectors[2].properties.max_connections: must be at least 1",
        ],
    );
}

/// Properties passed to librdkafka as they are meet librdkafka's own check
/// in `check-config`, not at start: its words, under the key's path.
#[test]
fn kafka_properties_librdkafka_refuses_are_named_with_their_paths() {
    let yaml = good_config().replace(
        "      - type: udp\n        properties:\n          ports: \"2055\"\n",
        r#"      - type: kafka
        properties: { brokers: "k:9092", topics: [t], properties: { fetch.wait.max.ms: soon, no.such.property: 1, socket.timeout.ms: 30000 } }
"#,
    ) + r#"  - name: edge_relay
    connectors: [{ type: udp, properties: { ports: "2056" } }]
    relay: { type: kafka, properties: { brokers: "k:9092", topic: flows, disk_max_md: 64, disk_max_mb: 1, linger.ms: 5, message.timeout.ms: -5, acks: 1 } }
"#;
    let stderr = assert_rejected(
        "librdkafka-properties",
        &yaml,
        &[
            "consumers[0].connectors[0].properties.properties.fetch.wait.max.ms: librdkafka refuses it: Invalid value",
            "consumers[0].connectors[0].properties.properties.no.such.property: librdkafka refuses it: No such configuration property",
            "consumers[1].relay.properties.disk_max_md: librdkafka refuses it: No such configuration property",
            "(did you mean `disk_max_mb`?)",
            "consumers[1].relay.properties.disk_max_mb: must be between 4",
            "consumers[1].relay.properties.message.timeout.ms: librdkafka refuses it: Configuration property \"message.timeout.ms\" value -5 is outside allowed range",
            "consumers[1].relay.properties.acks: conflicts with the relay's idempotent producer",
        ],
    );
    // librdkafka's words end with the line: no hint or blank line after them.
    assert!(!stderr.contains("\n\n"), "{stderr}");
    // What librdkafka takes passes.
    assert!(!stderr.contains("socket.timeout.ms"), "{stderr}");
    assert!(!stderr.contains("linger.ms"), "{stderr}");
}

#[test]
fn every_example_config_passes_check_config() {
    let examples = flowlink_e2e::repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = run_flowlink(&["check-config", "--config", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "examples/ has the quick start and the connector examples"
    );
}

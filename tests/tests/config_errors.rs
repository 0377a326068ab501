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
            "(loaded: ipfix, netflow, sflow)",
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

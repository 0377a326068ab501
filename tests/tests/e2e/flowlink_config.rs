//! FlowLink configurations run unchanged: `destinations` with one
//! `connector` mapping each, `api_key: $cat FILE`, `pce_addr` as
//! `host:port` (HTTPS), no `plugin_dir` and no flowlink-only key.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET};
use flowlink_e2e::{
    Daemon, Emulator, expected_aggregation, flowlink_bin, free_udp_port, read_flows_csv,
    send_capture, temp_dir, wait_for,
};

fn check_config(config: &Path, cwd: &Path) -> Output {
    Command::new(flowlink_bin())
        .args(["check-config", "--config"])
        .arg(config)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// A configuration as FlowLink's documentation writes one.
fn flowlink_yaml(pce_port: &str, udp_port: u16) -> String {
    format!(
        "pce_addr: localhost:{pce_port}\n\
         org_id: 1\n\
         api_key: $cat api_key\n\
         aggregation_minutes: 5\n\
         data_directory: data\n\
         metrics_print_seconds: 15\n\
         destinations:\n\
         \x20 - name: routers\n\
         \x20   connector:\n\
         \x20     type: udp\n\
         \x20     properties:\n\
         \x20       ports: \"{udp_port}\"\n\
         \x20   parser:\n\
         \x20     type: netflow\n"
    )
}

#[test]
fn a_flowlink_configuration_runs_from_another_working_directory() {
    let dir = temp_dir("flowlink-style");
    let elsewhere = temp_dir("flowlink-style-cwd");
    let cert = dir.join("pce-cert.pem");
    let (emulator, pce_port) = Emulator::start_https(&cert);
    let udp_port = free_udp_port();
    // Key and secret on two lines, as some FlowLink users keep them.
    std::fs::write(
        dir.join("api_key"),
        format!("{EMULATOR_KEY}\n{EMULATOR_SECRET}\n"),
    )
    .unwrap();
    let config = dir.join("flowlink.yaml");
    std::fs::write(&config, flowlink_yaml(&pce_port, udp_port)).unwrap();

    let out = check_config(&config, &elsewhere);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What flowlink does with each FlowLink key.
    for expected in [
        "pce_addr: uploads go to https://localhost:",
        &format!("api_key: authenticates as API key \"{EMULATOR_KEY}\" (secret not shown)"),
        "aggregation_minutes: one aggregation window every 300 s",
        "destinations: 1 consumer(s)",
        "plugin_dir: not set, the built-in plugins are used",
        &format!("consumer 0 \"routers\": UDP port {udp_port} → parser netflow"),
        "parser netflow ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains(EMULATOR_SECRET), "{stdout}");

    // The test trusts the emulator's self-signed certificate the way a
    // host trusts a PCE's private CA: in the system's certificate file.
    let cert_env = cert.to_str().unwrap();
    let mut daemon = Daemon::start_config(
        &dir,
        &config,
        Some(&elsewhere),
        &[("SSL_CERT_FILE", cert_env)],
    );
    send_capture("softflowd_v5", udp_port);
    // A 5-minute window: wait until every record is parsed (the counters
    // are logged every 15 s), then SIGTERM flushes the open window.
    let parsed = wait_for(Duration::from_secs(60), || {
        daemon.log().contains(" flows_parsed=343 ").then_some(())
    });
    assert!(parsed.is_some(), "{}", daemon.log());
    assert!(daemon.terminate().success(), "{}", daemon.log());
    assert_eq!(
        emulator.totals(),
        expected_aggregation(&read_flows_csv("softflowd_v5")),
        "{}",
        daemon.log()
    );
    assert!(
        dir.join("data").is_dir(),
        "data_directory beside the config"
    );
    assert!(!elsewhere.join("data").exists());
}

#[test]
fn connector_and_connectors_in_one_entry_are_refused_with_its_path() {
    let dir = temp_dir("flowlink-both");
    std::fs::write(dir.join("api_key"), "k:s\n").unwrap();
    let yaml = flowlink_yaml("8443", 2055).replace(
        "    parser:\n",
        "    connectors:\n      - { type: udp, properties: { ports: \"2056\" } }\n    parser:\n",
    );
    let config = dir.join("flowlink.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = check_config(&config, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("destinations[0]: has both `connector` and `connectors`"),
        "{stderr}"
    );
}

#[test]
fn a_misspelt_key_is_named_with_the_nearest_known_key() {
    let dir = temp_dir("flowlink-typo");
    std::fs::write(dir.join("api_key"), "k:s\n").unwrap();
    for (typo, known) in [
        ("aggregation_minutes", "agregation_minutes"),
        ("    connector:", "    conector:"),
    ] {
        let yaml = flowlink_yaml("8443", 2055).replace(typo, known);
        let config = dir.join("flowlink.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = check_config(&config, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let key = known.trim().trim_end_matches(':');
        let suggestion = typo.trim().trim_end_matches(':');
        assert!(
            stderr.contains(&format!("unknown field `{key}`"))
                && stderr.contains(&format!("did you mean `{suggestion}`?")),
            "{stderr}"
        );
    }
}

//! `log_format: json`: every line the daemon writes, from start through a
//! reload to shutdown, is one JSON object with the stable fields, and the
//! API secret is in none of them.

use std::time::Duration;

use flowlink_e2e::process::EMULATOR_SECRET as SECRET;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, free_udp_port, send_capture, temp_dir, wait_for,
};

#[test]
fn every_line_is_json_and_none_holds_the_secret() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let yaml = DaemonConfig::new(&emulator, "jsonlogs", "netflow")
        .udp(port)
        .with("log_format: json")
        .yaml();
    let dir = temp_dir("json-logs");
    let mut daemon = Daemon::start_in(&dir, &yaml);
    send_capture("softflowd_v5", port);
    let arrived = wait_for(Duration::from_secs(30), || {
        (!emulator.totals().is_empty()).then_some(())
    });
    assert!(arrived.is_some(), "{}", daemon.log());
    // A reload logs too (the level is pinned by the harness's FLOWLINK_LOG).
    std::fs::write(
        dir.join("flowlink.yaml"),
        format!("{yaml}log_level: debug\n"),
    )
    .unwrap();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    let reloaded = wait_for(Duration::from_secs(20), || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    });
    assert!(reloaded.is_some(), "{}", daemon.log());
    assert!(daemon.terminate().success());

    let log = daemon.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 5, "{log}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(value.get(field).is_some(), "no {field:?} in {line}");
        }
        assert!(!line.contains(SECRET), "the secret leaked: {line}");
    }
    // Event fields sit at the top level, beside the message.
    assert!(
        lines.iter().any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["consumer"] == "jsonlogs"
        }),
        "no line has a top-level consumer field:\n{log}"
    );
}

//! A stock PCE serves only the Bulk Traffic Loader. `upload_format: auto`
//! (the default) finds that out on the first upload and sends CSV from
//! then on, the batch that met the 404 included; an explicit `protobuf`
//! sets batches aside with a message that names `bulk_csv`.

use std::collections::BTreeSet;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, expected_aggregation, free_udp_port, read_flows_csv,
    send_capture, temp_dir, wait_for,
};
use serde_json::json;

const SWITCH_LINE: &str = "the PCE does not serve flowlink's protobuf endpoint";

fn stock_emulator() -> Emulator {
    Emulator::start_with(&["--listen", "127.0.0.1:0", "--stock"])
}

/// The keys of softflowd's v5 capture, as the direction rule folds them.
fn expected_keys() -> BTreeSet<(String, String, u16, u8)> {
    expected_aggregation(&read_flows_csv("softflowd_v5"))
        .into_keys()
        .collect()
}

fn endpoints(emulator: &Emulator) -> Vec<(String, u64)> {
    emulator
        .requests()
        .iter()
        .map(|r| {
            (
                r["endpoint"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits until the emulator has `lines` CSV lines.
fn wait_csv_lines(emulator: &Emulator, daemon: &Daemon, lines: u64) {
    let ok = wait_for(Duration::from_secs(30), || {
        (emulator.received()["csv_lines"] == lines).then_some(())
    });
    assert!(
        ok.is_some(),
        "csv_lines {} of {lines}; requests {:?}\n{}",
        emulator.received()["csv_lines"],
        endpoints(emulator),
        daemon.log()
    );
}

fn rejected_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("data/rejected"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn default_format_switches_to_csv_against_a_stock_pce() {
    let emulator = stock_emulator();
    let port = free_udp_port();
    let dir = temp_dir("stock-auto");
    let mut daemon = Daemon::start_in(
        &dir,
        &DaemonConfig::new(&emulator, "edge", "netflow")
            .udp(port)
            .yaml(),
    );
    send_capture("softflowd_v5", port);
    let keys = expected_keys();
    wait_csv_lines(&emulator, &daemon, keys.len() as u64);
    let got: BTreeSet<_> = emulator.totals().into_keys().collect();
    assert_eq!(got, keys);
    assert!(rejected_files(&dir).is_empty(), "nothing set aside");
    daemon.wait_log(SWITCH_LINE, 1);
    assert_eq!(
        daemon.log().matches(SWITCH_LINE).count(),
        1,
        "one line about the switch:\n{}",
        daemon.log()
    );
    let requests = endpoints(&emulator);
    assert_eq!(
        requests.iter().filter(|r| r.0 == "flow_batches").count(),
        1,
        "one protobuf probe: {requests:?}"
    );
    // Later windows go straight to CSV.
    send_capture("softflowd_v5", port);
    wait_csv_lines(&emulator, &daemon, 2 * keys.len() as u64);
    assert_eq!(
        endpoints(&emulator)
            .iter()
            .filter(|r| r.0 == "flow_batches")
            .count(),
        1
    );
    assert!(daemon.terminate().success());
}

#[test]
fn explicit_protobuf_against_a_stock_pce_is_set_aside_with_the_reason() {
    let emulator = stock_emulator();
    let port = free_udp_port();
    let dir = temp_dir("stock-protobuf");
    let mut daemon = Daemon::start_in(
        &dir,
        &DaemonConfig::new(&emulator, "edge", "netflow")
            .udp(port)
            .with("upload_format: protobuf")
            .yaml(),
    );
    send_capture("softflowd_v5", port);
    let aside = wait_for(Duration::from_secs(30), || {
        rejected_files(&dir)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "txt"))
    })
    .unwrap_or_else(|| panic!("nothing in rejected/\n{}", daemon.log()));
    let answer = std::fs::read_to_string(&aside).unwrap();
    for text in [
        "404",
        "does not serve flowlink's protobuf endpoint",
        "bulk_csv",
    ] {
        assert!(answer.contains(text), "{text:?} in {answer}");
        daemon.wait_log(text, 1);
    }
    assert_eq!(emulator.received()["csv_lines"], 0, "no CSV when pinned");
    assert!(daemon.terminate().success());
}

#[test]
fn explicit_bulk_csv_never_probes() {
    let emulator = stock_emulator();
    let port = free_udp_port();
    let mut daemon = Daemon::start(
        "stock-csv",
        &DaemonConfig::new(&emulator, "edge", "netflow")
            .udp(port)
            .with("upload_format: bulk_csv")
            .yaml(),
    );
    send_capture("softflowd_v5", port);
    wait_csv_lines(&emulator, &daemon, expected_keys().len() as u64);
    assert!(
        endpoints(&emulator)
            .iter()
            .all(|r| r.0 == "bulk_traffic_flows" && r.1 == 200)
    );
    assert!(!daemon.log().contains(SWITCH_LINE));
    assert!(daemon.terminate().success());
}

#[test]
fn after_the_switch_a_restart_replays_the_spool_as_csv() {
    let emulator = stock_emulator();
    let port = free_udp_port();
    let dir = temp_dir("stock-restart");
    let config = DaemonConfig::new(&emulator, "edge", "netflow")
        .udp(port)
        .yaml();
    let keys = expected_keys().len() as u64;
    let mut daemon = Daemon::start_in(&dir, &config);
    send_capture("softflowd_v5", port);
    wait_csv_lines(&emulator, &daemon, keys);
    // The PCE goes down: the next window waits in the spool.
    emulator.set_fault(json!({"mode": "unavailable"}));
    send_capture("softflowd_v5", port);
    let spooled = wait_for(Duration::from_secs(30), || {
        std::fs::read_dir(dir.join("data/spool"))
            .ok()
            .is_some_and(|mut d| d.next().is_some())
            .then_some(())
    });
    assert!(spooled.is_some(), "{}", daemon.log());
    assert!(daemon.terminate().success());
    emulator.set_fault(json!({"mode": "ok"}));
    let mut daemon = Daemon::start_in(&dir, &config);
    wait_csv_lines(&emulator, &daemon, 2 * keys);
    assert!(rejected_files(&dir).is_empty(), "{}", daemon.log());
    assert!(daemon.terminate().success());
}

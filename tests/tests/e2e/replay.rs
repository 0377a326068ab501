//! `flowlink replay` against the real daemon: every datagram of a capture
//! arrives, once per loop and per exporter, with the templates each
//! exporter sent (so nothing is rejected for a missing template); counts
//! come from tshark's decoding of the captures (flows.csv).

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, capture_dir, datagram_files, free_tcp_port, free_udp_port,
    read_flows_csv, run_flowlink, temp_dir,
};

/// The full name of one of the consumer's counters.
fn counter_name(name: &str) -> String {
    format!("flowlink_{name}_total{{consumer=\"replay\"}}")
}

fn counter(metrics: &str, name: &str) -> u64 {
    flowlink_e2e::process::metric(metrics, &counter_name(name))
}

fn daemon(parser: &str) -> (Emulator, Daemon, u16, String) {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = DaemonConfig::new(&emulator, "replay", parser)
        .udp(port)
        .metrics(&metrics)
        .yaml();
    let daemon = Daemon::start("replay", &config);
    (emulator, daemon, port, metrics)
}

fn wait_counter(daemon: &Daemon, metrics: &str, name: &str, want: u64) {
    flowlink_e2e::process::wait_metric(daemon, metrics, &counter_name(name), want);
}

#[test]
fn datagram_files_loop_from_two_exporters_with_their_own_templates() {
    let (_emulator, daemon, port, metrics) = daemon("netflow");
    let files = datagram_files("softflowd_v9");
    let records = read_flows_csv("softflowd_v9").len() as u64;
    let mut args = vec![
        "replay".to_owned(),
        "--to".to_owned(),
        format!("127.0.0.1:{port}"),
        "--loop".to_owned(),
        "2".to_owned(),
        "--exporters".to_owned(),
        "2".to_owned(),
        "--rate".to_owned(),
        "2000".to_owned(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = run_flowlink(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = 4 * files.len() as u64;
    assert!(
        stdout.contains(&format!("sent {sent} datagrams")),
        "{stdout}"
    );
    wait_counter(&daemon, &metrics, "messages_in", sent);
    wait_counter(&daemon, &metrics, "flows_parsed", 4 * records);
    assert_eq!(counter(&metrics, "records_rejected"), 0, "{}", daemon.log());
}

#[test]
fn a_pcap_is_replayed_datagram_by_datagram() {
    let (_emulator, daemon, port, metrics) = daemon("netflow");
    // Frames 1-3 of softflowd's v5 capture (linktypes/README.md).
    let records = read_flows_csv("softflowd_v5")
        .iter()
        .filter(|f| f.frame <= 3)
        .count() as u64;
    let pcap = capture_dir("linktypes").join("ethernet_lo.pcap");
    let out = run_flowlink(&[
        "replay",
        "--to",
        &format!("127.0.0.1:{port}"),
        pcap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_counter(&daemon, &metrics, "messages_in", 3);
    wait_counter(&daemon, &metrics, "flows_parsed", records);
}

#[test]
fn save_to_writes_each_datagram_of_a_capture_as_a_file() {
    // linktypes/README.md: the pcap's three UDP payloads are softflowd_v5's
    // 0001.bin–0003.bin byte for byte (checked there with tshark).
    let pcap = capture_dir("linktypes").join("ethernet_lo.pcap");
    let dir = temp_dir("replay-save").join("out");
    let out = run_flowlink(&[
        "replay",
        "--save-to",
        dir.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut saved: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    saved.sort();
    let expected = &datagram_files("softflowd_v5")[..3];
    assert_eq!(saved.len(), expected.len(), "{saved:?}");
    for (saved, expected) in saved.iter().zip(expected) {
        assert_eq!(
            std::fs::read(saved).unwrap(),
            std::fs::read(expected).unwrap(),
            "{} against {}",
            saved.display(),
            expected.display()
        );
    }
    // A second save there would mix with the first: refused, by name.
    let again = run_flowlink(&[
        "replay",
        "--save-to",
        dir.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--save-to {}: the folder is not empty",
            dir.display()
        )),
        "{stderr}"
    );
}

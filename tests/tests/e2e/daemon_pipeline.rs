//! `flowlink run` end to end: real UDP datagrams from independent exporters
//! in, aggregated flows out at the real PCE emulator.

use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, expected_aggregation, free_tcp_port, free_udp_port,
    read_flows_csv, scrape, send_capture, wait_for,
};

fn config(emulator: &Emulator, udp_port: u16, metrics_port: u16) -> DaemonConfig {
    DaemonConfig::new(emulator, "edge", "netflow")
        .udp(udp_port)
        .window_seconds(2)
        .metrics(&format!("127.0.0.1:{metrics_port}"))
        .with("org_id: 7")
        .with("parser_workers: 2")
}

#[test]
fn datagrams_over_udp_reach_the_pce_aggregated_exactly() {
    let emulator = Emulator::start();
    let (udp_port, metrics_port) = (free_udp_port(), free_tcp_port());
    let mut daemon = Daemon::start(
        "pipeline",
        &config(&emulator, udp_port, metrics_port).yaml(),
    );

    send_capture("softflowd_v5", udp_port);
    send_capture("fprobe_v5", udp_port);

    let mut csv = read_flows_csv("softflowd_v5");
    csv.extend(read_flows_csv("fprobe_v5"));
    let expected = expected_aggregation(&csv);
    let arrived = wait_for(Duration::from_secs(30), || {
        (emulator.totals() == expected).then_some(())
    });
    if arrived.is_none() {
        let got = emulator.totals();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .take(5)
            .collect();
        panic!(
            "emulator totals differ ({} keys expected, {} received); first differences: {missing:?}\n{}",
            expected.len(),
            got.len(),
            daemon.log()
        );
    }
    let received = emulator.received();
    assert_eq!(received["duplicate_batches"], 0);
    assert!(
        received["flows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["org"] == 7)
    );

    let metrics = scrape(&format!("127.0.0.1:{metrics_port}"));
    assert_eq!(metrics["flowlink_messages_in_total{consumer=\"edge\"}"], 24);
    assert_eq!(
        metrics["flowlink_flows_parsed_total{consumer=\"edge\"}"],
        686
    );
    assert_eq!(metrics["flowlink_queue_drops_total{consumer=\"edge\"}"], 0);

    assert!(
        daemon.terminate().success(),
        "clean exit on SIGTERM:\n{}",
        daemon.log()
    );
}

#[test]
fn sigterm_mid_window_delivers_the_partial_window() {
    let emulator = Emulator::start();
    let (udp_port, metrics_port) = (free_udp_port(), free_tcp_port());
    // A one-hour window: only the shutdown flush can deliver these flows.
    let yaml = config(&emulator, udp_port, metrics_port)
        .window_seconds(3600)
        .yaml();
    let mut daemon = Daemon::start("sigterm", &yaml);
    send_capture("softflowd_v5", udp_port);
    let parsed = wait_for(Duration::from_secs(20), || {
        let m = scrape(&format!("127.0.0.1:{metrics_port}"));
        (m.get("flowlink_flows_aggregated_total{consumer=\"edge\"}") == Some(&343)).then_some(())
    });
    assert!(parsed.is_some(), "flows not aggregated:\n{}", daemon.log());
    assert!(
        emulator.totals().is_empty(),
        "nothing uploaded before the window ends"
    );

    assert!(daemon.terminate().success(), "{}", daemon.log());
    assert_eq!(
        emulator.totals(),
        expected_aggregation(&read_flows_csv("softflowd_v5"))
    );
}

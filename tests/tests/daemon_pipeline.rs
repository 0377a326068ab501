//! `flowlink run` end to end: real UDP datagrams from independent exporters
//! in, aggregated flows out at the real PCE emulator.

use std::net::UdpSocket;
use std::time::Duration;

use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET};
use flowlink_e2e::{
    Daemon, Emulator, datagram_files, expected_aggregation, free_tcp_port, free_udp_port,
    plugin_dir, read_flows_csv, scrape, wait_for,
};

fn config(emulator: &Emulator, udp_port: u16, metrics_port: u16) -> String {
    format!(
        r#"
pce_addr: {url}
org_id: 7
api_key:
  key: {EMULATOR_KEY}
  secret: {EMULATOR_SECRET}
aggregation_seconds: 2
plugin_dir: {plugins}
metrics_listen: 127.0.0.1:{metrics_port}
parser_workers: 2
consumers:
  - name: edge
    connectors:
      - type: udp
        properties:
          ports: "{udp_port}"
          listen_address: 127.0.0.1
    parser:
      type: netflow
"#,
        url = emulator.url,
        plugins = plugin_dir().display(),
    )
}

fn send_capture(job: &str, port: u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for file in datagram_files(job) {
        socket
            .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", port))
            .unwrap();
    }
}

#[test]
fn datagrams_over_udp_reach_the_pce_aggregated_exactly() {
    let emulator = Emulator::start();
    let (udp_port, metrics_port) = (free_udp_port(), free_tcp_port());
    let mut daemon = Daemon::start("pipeline", &config(&emulator, udp_port, metrics_port));

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
        .replace("aggregation_seconds: 2", "aggregation_seconds: 3600");
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

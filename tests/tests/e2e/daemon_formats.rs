//! Every binary format through the running daemon: captures from the
//! independent exporters sent over UDP (NetFlow v9, IPFIX biflows, sFlow
//! at 1-in-10) and over TCP (IPFIX message framing, one parser session per
//! connection), checked at the PCE emulator against tshark's decoding,
//! aggregated and, for sFlow, scaled by the sampling rate.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, aggregate, datagram_files, expected_aggregation,
    expected_flows, free_tcp_port, free_udp_port, read_flows_csv, scrape, send_capture, wait_for,
};

fn assert_delivered(
    emulator: &Emulator,
    daemon: &Daemon,
    expected: &flowlink_e2e::process::Totals,
) {
    let arrived = wait_for(Duration::from_secs(30), || {
        (emulator.totals() == *expected).then_some(())
    });
    if arrived.is_none() {
        let got = emulator.totals();
        let diff: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .take(5)
            .collect();
        panic!(
            "{} keys expected, {} received; differing {diff:?}; unexpected {extra:?}\n{}",
            expected.len(),
            got.len(),
            daemon.log()
        );
    }
}

#[test]
fn netflow_v9_over_udp() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut daemon = Daemon::start(
        "v9",
        &DaemonConfig::new(&emulator, "v9", "netflow")
            .udp(port)
            .yaml(),
    );
    send_capture("softflowd_v9", port);
    assert_delivered(
        &emulator,
        &daemon,
        &expected_aggregation(&read_flows_csv("softflowd_v9")),
    );
    assert!(daemon.terminate().success());
}

#[test]
fn ipfix_biflows_over_udp_become_both_directions() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut daemon = Daemon::start(
        "biflow",
        &DaemonConfig::new(&emulator, "biflow", "ipfix")
            .udp(port)
            .yaml(),
    );
    send_capture("softflowd_v10_biflow", port);
    let expected = expected_aggregation(&read_flows_csv("softflowd_v10_biflow"));
    assert_eq!(expected.values().map(|t| t.0).sum::<u64>(), 569);
    assert_delivered(&emulator, &daemon, &expected);
    assert!(daemon.terminate().success());
}

#[test]
fn sflow_over_udp_is_scaled_by_the_sampling_rate() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut daemon = Daemon::start(
        "sflow",
        &DaemonConfig::new(&emulator, "sflow", "sflow")
            .udp(port)
            .yaml(),
    );
    send_capture("pmacct_sfprobe_rate10", port);
    let expected = expected_aggregation(&read_flows_csv("pmacct_sfprobe_rate10"));
    assert_eq!(
        expected.values().map(|t| t.1).sum::<u64>(),
        4510,
        "451 samples at 1-in-10"
    );
    assert_delivered(&emulator, &daemon, &expected);
    assert!(daemon.terminate().success());
}

#[test]
fn a_component_of_the_first_contract_minor_gets_batches_in_the_daemon() {
    // The sFlow decoder built against flowlink:parser@1.0.0 as released: the
    // daemon hands it lists of messages (no packed input), a capture sent
    // back to back arriving in batches; the same totals as tshark's.
    let emulator = Emulator::start();
    let port = free_udp_port();
    let config = DaemonConfig::new(&emulator, "sflow-1-0", "sflow-contract-1-0")
        .udp(port)
        .plugin_dir(&flowlink_e2e::test_plugin_dir());
    let mut daemon = Daemon::start("sflow-1-0", &config.yaml());
    send_capture("pmacct_sfprobe_rate10", port);
    let expected = expected_aggregation(&read_flows_csv("pmacct_sfprobe_rate10"));
    assert_delivered(&emulator, &daemon, &expected);
    assert!(daemon.terminate().success());
}

#[test]
fn ipfix_over_tcp_one_session_per_connection() {
    let emulator = Emulator::start();
    let (port, metrics_port) = (free_tcp_port(), free_tcp_port());
    let config = DaemonConfig::new(&emulator, "tcp", "ipfix")
        .tcp_ipfix(port)
        .metrics(&format!("127.0.0.1:{metrics_port}"));
    let mut daemon = Daemon::start("tcp", &config.yaml());

    // Two exporters' connections at once, each a whole capture as one
    // byte stream, written in odd-sized pieces: framing must not care.
    let streams: Vec<Vec<u8>> = ["pmacct_nfprobe_v10", "softflowd_v10"]
        .iter()
        .map(|job| {
            datagram_files(job)
                .iter()
                .flat_map(|f| std::fs::read(f).unwrap())
                .collect()
        })
        .collect();
    let writers: Vec<_> = streams
        .into_iter()
        .map(|bytes| {
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
                for piece in bytes.chunks(777) {
                    conn.write_all(piece).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }

    let mut flows = expected_flows(&read_flows_csv("pmacct_nfprobe_v10"));
    flows.extend(expected_flows(&read_flows_csv("softflowd_v10")));
    assert_delivered(&emulator, &daemon, &aggregate(&flows));
    let metrics = scrape(&format!("127.0.0.1:{metrics_port}"));
    assert_eq!(
        metrics["flowlink_messages_in_total{consumer=\"tcp\"}"],
        92 + 23
    );
    assert_eq!(
        metrics["flowlink_records_rejected_total{consumer=\"tcp\"}"],
        0
    );
    assert!(daemon.terminate().success());
}

#[test]
fn tcp_framing_errors_close_only_that_connection() {
    let emulator = Emulator::start();
    let port = free_tcp_port();
    let mut daemon = Daemon::start(
        "tcp-bad",
        &DaemonConfig::new(&emulator, "tcp-bad", "ipfix")
            .tcp_ipfix(port)
            .yaml(),
    );
    let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A header whose length (3) is shorter than the header itself.
    bad.write_all(&[0, 10, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    let logged = wait_for(Duration::from_secs(10), || {
        daemon.log().contains("framing lost").then_some(())
    });
    assert!(logged.is_some(), "{}", daemon.log());

    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for file in datagram_files("pmacct_nfprobe_v10") {
        good.write_all(&std::fs::read(file).unwrap()).unwrap();
    }
    assert_delivered(
        &emulator,
        &daemon,
        &expected_aggregation(&read_flows_csv("pmacct_nfprobe_v10")),
    );
    assert!(daemon.is_running());
    assert!(daemon.terminate().success());
}

//! `aggregation_max_keys`: a window that outgrows it is flushed early,
//! counted and logged, and nothing is lost.

use std::net::UdpSocket;
use std::time::Duration;

use flowlink_decoders::netflow::v5::synthetic_datagram;
use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET};
use flowlink_e2e::{Daemon, Emulator, free_tcp_port, free_udp_port, plugin_dir, scrape, wait_for};

#[test]
fn a_window_over_its_key_bound_is_flushed_early() {
    let emulator = Emulator::start();
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let yaml = format!(
        r#"
pce_addr: {url}
api_key: "{EMULATOR_KEY}:{EMULATOR_SECRET}"
aggregation_seconds: 3600
aggregation_max_keys: 1000
plugin_dir: {plugins}
metrics_listen: {metrics}
consumers:
  - name: bounded
    connectors:
      - type: udp
        properties: {{ ports: {udp_port}, listen_address: 127.0.0.1 }}
    parser:
      type: netflow
"#,
        url = emulator.url,
        plugins = plugin_dir().display(),
    );
    let mut daemon = Daemon::start("bounds", &yaml);
    // 40 datagrams × 30 records, every record its own client: 1200 keys.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in 0..40u32 {
        let mut datagram = synthetic_datagram(30, 0);
        for r in 0..30u32 {
            let at = 24 + r as usize * 48;
            datagram[at..at + 4].copy_from_slice(&(0x0a00_0000 + d * 256 + r).to_be_bytes());
        }
        socket.send_to(&datagram, ("127.0.0.1", udp_port)).unwrap();
    }
    let counter = "flowlink_aggregation_early_flushes_total{consumer=\"bounded\"}";
    let flushed = wait_for(Duration::from_secs(20), || {
        (scrape(&metrics).get(counter) == Some(&1)).then_some(())
    });
    assert!(
        flushed.is_some(),
        "{:?}\n{}",
        scrape(&metrics),
        daemon.log()
    );
    let early = wait_for(Duration::from_secs(20), || {
        let n = emulator.totals().len();
        (n > 1000).then_some(n)
    });
    let early = early.expect("the early batch reaches the PCE within the hour-long window");
    assert!(early < 1200, "only the early flush so far: {early}");
    assert!(
        daemon.log().contains("aggregation_max_keys reached"),
        "{}",
        daemon.log()
    );

    assert!(daemon.terminate().success());
    let totals = emulator.totals();
    assert_eq!(totals.len(), 1200, "the rest comes with the shutdown flush");
    for ((src, _, _, _), (connections, packets, bytes)) in &totals {
        // Record r of a synthetic datagram has 10 + r packets and 1000 + r bytes.
        let r: u64 = src.rsplit('.').next().unwrap().parse().unwrap();
        assert_eq!(
            (*connections, *packets, *bytes),
            (1, 10 + r, 1000 + r),
            "{src}"
        );
    }
}

//! `aggregation_max_keys`: a window that outgrows it is flushed early,
//! counted and logged, and nothing is lost.

use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, distinct_key_datagrams, free_tcp_port, free_udp_port, scrape,
    send_datagrams, wait_for,
};

#[test]
fn a_window_over_its_key_bound_is_flushed_early() {
    let emulator = Emulator::start();
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let config = DaemonConfig::new(&emulator, "bounded", "netflow")
        .udp(udp_port)
        .window_seconds(3600)
        .metrics(&metrics)
        .with("aggregation_max_keys: 1000");
    let mut daemon = Daemon::start("bounds", &config.yaml());
    send_datagrams(&distinct_key_datagrams(40), udp_port);
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
        (n >= 1000).then_some(n)
    });
    let early = early.expect("the early batch reaches the PCE within the hour-long window");
    assert_eq!(
        early, 1000,
        "the early batch holds the bound's keys, no more"
    );
    daemon.wait_log("aggregation_max_keys reached", 1);

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

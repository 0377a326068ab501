//! HTTPS to the PCE: `pce_addr: host:port` means HTTPS (as in FlowLink);
//! a self-signed PCE is trusted through `pce_ca_file`, or with the explicit
//! `pce_insecure` switch, and refused otherwise.

use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, expected_aggregation, free_tcp_port, free_udp_port,
    read_flows_csv, send_capture, temp_dir, wait_for,
};

/// An HTTPS emulator, its certificate file, and a daemon pointed at it by
/// `localhost:PORT`, with `tls_setting` (CERT: the certificate file) in its config.
fn run(name: &str, tls_setting: Option<&str>) -> (Emulator, Daemon, String) {
    let dir = temp_dir(name);
    let cert = dir.join("pce-cert.pem");
    let (emulator, port) = Emulator::start_https(&cert);
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let mut config = DaemonConfig::new(&emulator, "tls", "netflow")
        .udp(udp_port)
        .metrics(&metrics)
        .pce_addr(&format!("localhost:{port}"));
    if let Some(setting) = tls_setting {
        config = config.with(&setting.replace("CERT", cert.to_str().unwrap()));
    }
    let daemon = Daemon::start_in(&dir, &config.yaml());
    send_capture("softflowd_v5", udp_port);
    (emulator, daemon, metrics)
}

fn assert_delivered(emulator: &Emulator, daemon: &Daemon) {
    let expected = expected_aggregation(&read_flows_csv("softflowd_v5"));
    let ok = wait_for(Duration::from_secs(30), || {
        (emulator.totals() == expected).then_some(())
    });
    assert!(ok.is_some(), "{}", daemon.log());
}

#[test]
fn a_self_signed_pce_is_trusted_through_pce_ca_file() {
    let (emulator, mut daemon, _) = run("tls-ca", Some("pce_ca_file: CERT"));
    assert_delivered(&emulator, &daemon);
    assert!(daemon.terminate().success());
}

#[test]
fn without_the_ca_the_certificate_is_refused_and_batches_wait_in_the_spool() {
    let (emulator, mut daemon, metrics) = run("tls-none", None);
    let spooled = wait_for(Duration::from_secs(30), || {
        (flowlink_e2e::process::metric(&metrics, "flowlink_batches_spooled_total") >= 1)
            .then_some(())
    });
    assert!(spooled.is_some(), "{}", daemon.log());
    let says_why = wait_for(Duration::from_secs(30), || {
        daemon
            .log()
            .to_lowercase()
            .contains("certificate")
            .then_some(())
    });
    assert!(says_why.is_some(), "the log says why: {}", daemon.log());
    assert!(emulator.totals().is_empty());
    assert!(daemon.terminate().success());
}

#[test]
fn pce_insecure_skips_the_check_and_says_so() {
    let (emulator, mut daemon, _) = run("tls-insecure", Some("pce_insecure: true"));
    assert_delivered(&emulator, &daemon);
    daemon.wait_log("pce_insecure is set", 1);
    assert!(daemon.terminate().success());
}

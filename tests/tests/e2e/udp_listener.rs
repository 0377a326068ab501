//! The UDP connector's socket: one dual-stack `[::]` listener takes IPv4
//! and IPv6 exporters, and datagrams the kernel drops because flowlink was
//! not reading are counted (`kernel_drops`), exactly.

use std::net::UdpSocket;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, distinct_key_datagrams, free_tcp_port, free_udp_port, scrape,
    wait_for,
};

fn counter(metrics: &str, name: &str, consumer: &str) -> u64 {
    flowlink_e2e::process::metric(
        metrics,
        &format!("flowlink_{name}_total{{consumer=\"{consumer}\"}}"),
    )
}

#[test]
fn dual_stack_listener_takes_ipv4_and_ipv6_exporters() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let daemon = Daemon::start(
        "udp6",
        &DaemonConfig::new(&emulator, "udp6", "netflow")
            .connector(&format!(
                "{{ type: udp, properties: {{ ports: \"{port}\", listen_address: \"::\" }} }}"
            ))
            .metrics(&metrics)
            .yaml(),
    );
    let datagrams = distinct_key_datagrams(4);
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v6 = UdpSocket::bind("[::1]:0").unwrap();
    v4.send_to(&datagrams[0], ("127.0.0.1", port)).unwrap();
    v4.send_to(&datagrams[1], ("127.0.0.1", port)).unwrap();
    v6.send_to(&datagrams[2], ("::1", port)).unwrap();
    v6.send_to(&datagrams[3], ("::1", port)).unwrap();
    let parsed = wait_for(Duration::from_secs(20), || {
        (counter(&metrics, "flows_parsed", "udp6") == 120).then_some(())
    });
    assert!(parsed.is_some(), "{:?}\n{}", scrape(&metrics), daemon.log());
    let arrived = wait_for(Duration::from_secs(20), || {
        (emulator.totals().len() == 120).then_some(())
    });
    assert!(arrived.is_some(), "{}", daemon.log());
}

#[test]
fn kernel_drops_are_counted_exactly() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let daemon = Daemon::start(
        "kdrops",
        &DaemonConfig::new(&emulator, "kdrops", "netflow")
            .connector(&format!(
                "{{ type: udp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1, receive_buffer_bytes: 65536 }} }}"
            ))
            .metrics(&metrics)
            .yaml(),
    );
    // Frozen, the daemon reads nothing: the socket buffer fills and the
    // kernel drops the rest.
    let pid = daemon.pid();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // kill(2) returns before the stop takes effect: on a busy machine the
    // receive thread could still drain the socket. Wait until every thread
    // is stopped ('T' in /proc/PID/task/*/stat).
    let stopped = wait_for(Duration::from_secs(10), || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks
            .filter_map(Result::ok)
            .all(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|stat| {
                        stat.rsplit_once(") ")
                            .map(|(_, rest)| rest.starts_with('T'))
                    })
                    .unwrap_or(false)
            })
            .then_some(())
    });
    assert!(stopped.is_some(), "the daemon did not stop");
    let sent = 400u64;
    let datagram = distinct_key_datagrams(1).remove(0);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..sent {
        socket.send_to(&datagram, ("127.0.0.1", port)).unwrap();
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let accounted = wait_for(Duration::from_secs(20), || {
        let received = counter(&metrics, "messages_in", "kdrops");
        let dropped = counter(&metrics, "kernel_drops", "kdrops");
        (dropped > 0 && received + dropped == sent).then_some((received, dropped))
    });
    assert!(
        accounted.is_some(),
        "received + kernel drops != {sent}: {:?}\n{}",
        scrape(&metrics),
        daemon.log()
    );
    daemon.wait_log("the kernel dropped datagrams", 1);
}

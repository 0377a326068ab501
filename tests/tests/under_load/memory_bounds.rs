//! Queues between stages are bounded in bytes: a flood of maximum-size
//! messages at a parser slower than the source keeps the daemon's resident
//! memory within the configured bound (`queue_max_mb`) plus a fixed slack,
//! whether the source waits (a file) or drops (UDP, counted).
//!
//! The slow parser is the hostile test plugin: a message starting `SPIN`
//! loops until the plugin deadline (here 10 ms), so the parser takes a few
//! dozen messages a second while the source offers thousands.

use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use flowlink_e2e::process::rss_kib;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, free_tcp_port, free_udp_port, temp_dir, test_plugin_dir,
    wait_for,
};

const QUEUE_MB: u64 = 8;
/// Beyond the queue bound: the framer's read buffer, plugin instances'
/// linear memory (a 64 KiB message each), the allocator's slack.
const SLACK_MB: u64 = 40;

fn messages_in(metrics: &str) -> u64 {
    flowlink_e2e::process::metric(metrics, "flowlink_messages_in_total{consumer=\"flood\"}")
}

fn queue_drops(metrics: &str) -> u64 {
    flowlink_e2e::process::metric(metrics, "flowlink_queue_drops_total{consumer=\"flood\"}")
}

fn assert_within_bound(peak_kib: u64, baseline_kib: u64) {
    let grown_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    assert!(
        grown_mib <= QUEUE_MB + SLACK_MB,
        "RSS grew by {grown_mib} MiB (bound {QUEUE_MB} MiB + {SLACK_MB} MiB slack)"
    );
}

/// The largest RSS seen until `done`, sampled every 20 ms.
fn peak_rss_until(daemon: &Daemon, mut done: impl FnMut() -> bool) -> u64 {
    let mut peak = 0;
    let finished = wait_for(Duration::from_secs(120), || {
        peak = peak.max(rss_kib(daemon.pid()));
        done().then_some(())
    });
    assert!(finished.is_some(), "flood not taken in:\n{}", daemon.log());
    peak
}

fn config(emulator: &Emulator, metrics: &str) -> DaemonConfig {
    DaemonConfig::new(emulator, "flood", "hostile")
        .plugin_dir(&test_plugin_dir())
        .metrics(metrics)
        .with("parser_workers: 1")
        .with("queue_capacity: 65536")
        .with(&format!("queue_max_mb: {QUEUE_MB}"))
        .parser_with("timeout_ms: 10")
}

/// A SPIN message of `len` bytes (padding after the tag).
fn spin(len: usize) -> Vec<u8> {
    let mut message = b"SPIN".to_vec();
    message.resize(len, b'.');
    message
}

#[test]
fn a_file_of_maximum_size_lines_waits_for_the_parser_within_the_bound() {
    let _alone = super::alone();
    let emulator = Emulator::start();
    let dir = temp_dir("memory-file");
    let path = dir.join("flood.log");
    std::fs::File::create(&path).unwrap();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = config(&emulator, &metrics).connector(&format!(
        "{{ type: file, properties: {{ path: \"{}\", start_position: beginning, max_message_bytes: 65536 }} }}",
        path.display()
    ));
    let daemon = Daemon::start_in(&dir, &config.yaml());
    let baseline = rss_kib(daemon.pid());

    // 1,500 lines of 64 KiB: 94 MiB, over ten times the bound.
    let mut line = spin(65_535);
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    for _ in 0..1500 {
        file.write_all(&line).unwrap();
    }
    file.flush().unwrap();
    // The tail hands lines on in reads of 256 KiB: 375 messages. Unbounded,
    // the whole file would be in the queue by the 200th.
    let peak = peak_rss_until(&daemon, || messages_in(&metrics) >= 200);
    assert_within_bound(peak, baseline);
    // Waited, not dropped: nothing counted as a queue drop.
    assert_eq!(
        queue_drops(&metrics),
        0,
        "a file source waits instead of dropping"
    );
}

#[test]
fn a_udp_flood_of_maximum_size_datagrams_is_dropped_beyond_the_bound() {
    let _alone = super::alone();
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = config(&emulator, &metrics).udp(port);
    let daemon = Daemon::start("memory-udp", &config.yaml());
    let baseline = rss_kib(daemon.pid());

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = spin(65_000);
    // Sends until told to stop: the kernel drops what the daemon does not
    // read in time, so the count sent says nothing; what the daemon took
    // in does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Stops the sender however this test ends (a panic too): a flood left
    // running would load the machine for the other tests.
    struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _stop_sender = StopOnDrop(stop.clone());
    let sender = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = socket.send_to(&datagram, ("127.0.0.1", port));
                std::thread::yield_now();
            }
        }
    });
    // 2,000 datagrams taken in are 124 MiB.
    let peak = peak_rss_until(&daemon, || messages_in(&metrics) >= 2000);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    assert_within_bound(peak, baseline);
    let drops = queue_drops(&metrics);
    assert!(
        drops >= 1000,
        "{drops} drops: datagrams beyond the byte bound are dropped and counted"
    );
}

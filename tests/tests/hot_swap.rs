//! Hot swap: a new build of a plugin dropped into `plugin_dir` while the
//! daemon runs takes over between two messages, keeps the templates the old
//! one learned, and loses no datagram; a broken build is refused and the
//! running one stays.

use std::path::Path;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, datagram_files, expected_aggregation, free_tcp_port,
    free_udp_port, plugin_dir, read_flows_csv, scrape, send_datagrams, temp_dir, wait_for,
};

/// The component with a custom section appended: other bytes, same code.
fn rebuilt(wasm: &[u8], note: &str) -> Vec<u8> {
    let name = b"flowlink-test-build";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(note.as_bytes());
    assert!(body.len() < 128, "one-byte LEB128 size");
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// Replaces a plugin file the way a deployment would: write aside, rename.
fn install(dir: &Path, bytes: &[u8]) {
    let staging = dir.join(".netflow.wasm.new");
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(&staging, dir.join("netflow.wasm")).unwrap();
}

#[test]
fn a_new_build_takes_over_with_its_templates_and_a_broken_one_is_refused() {
    let emulator = Emulator::start();
    let dir = temp_dir("hot-swap");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let original = std::fs::read(plugin_dir().join("netflow.wasm")).unwrap();
    std::fs::write(plugins.join("netflow.wasm"), &original).unwrap();
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let config = DaemonConfig::new(&emulator, "swap", "netflow")
        .udp(udp_port)
        .metrics(&metrics)
        .plugin_dir(&plugins);
    let mut daemon = Daemon::start_in(&dir, &config.yaml());
    let parsed = || {
        flowlink_e2e::process::metric(&metrics, "flowlink_flows_parsed_total{consumer=\"swap\"}")
    };

    // softflowd sends templates in datagrams 1 and 17 only.
    let files = datagram_files("softflowd_v9");
    let read = |range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        files[range]
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    };
    // Flows in the first n datagrams, by tshark's decoding of the capture.
    let csv = read_flows_csv("softflowd_v9");
    let flows_in = |n: usize| csv.iter().filter(|f| (f.frame as usize) <= n).count() as u64;

    send_datagrams(&read(0..1), udp_port);
    let first = flows_in(1);
    assert!(
        wait_for(Duration::from_secs(20), || (parsed() == first)
            .then_some(()))
        .is_some(),
        "{}",
        daemon.log()
    );

    install(&plugins, &rebuilt(&original, "build 2"));
    let swapped = wait_for(Duration::from_secs(20), || {
        daemon
            .log()
            .contains("swapped in a new plugin build")
            .then_some(())
    });
    assert!(swapped.is_some(), "{}", daemon.log());

    // Data only: decodable only with the templates the old build learned.
    send_datagrams(&read(1..16), udp_port);
    let through_16 = flows_in(16);
    let carried = wait_for(Duration::from_secs(20), || {
        (parsed() == through_16).then_some(())
    });
    assert!(
        carried.is_some(),
        "parsed {} of {through_16}\n{}",
        parsed(),
        daemon.log()
    );

    std::fs::write(
        plugins.join("broken.wasm"),
        b"\0asm\x0d\0\x01\0 not a component",
    )
    .unwrap();
    install(&plugins, b"\0asm not even close");
    let refused = wait_for(Duration::from_secs(20), || {
        daemon
            .log()
            .contains("not swapped in, the running version stays")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", daemon.log());

    send_datagrams(&read(16..files.len()), udp_port);
    let all = wait_for(Duration::from_secs(20), || (parsed() == 569).then_some(()));
    assert!(all.is_some(), "parsed {}\n{}", parsed(), daemon.log());
    let expected = expected_aggregation(&read_flows_csv("softflowd_v9"));
    let delivered = wait_for(Duration::from_secs(20), || {
        (emulator.totals() == expected).then_some(())
    });
    assert!(delivered.is_some(), "{}", daemon.log());
    assert_eq!(
        scrape(&metrics).get("flowlink_records_rejected_total{consumer=\"swap\"}"),
        Some(&0)
    );
    assert!(daemon.terminate().success());
}

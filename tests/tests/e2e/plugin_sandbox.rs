//! A hostile plugin (infinite loop, 1 GiB allocation, panic, a flood of
//! records) costs one message each; the daemon and the next good datagram
//! carry on, and the counters say what happened.

use std::net::UdpSocket;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, free_tcp_port, free_udp_port, scrape, test_plugin_dir, wait_for,
};

#[test]
fn faults_cost_one_message_and_the_daemon_goes_on() {
    let emulator = Emulator::start();
    let (udp_port, metrics_port) = (free_udp_port(), free_tcp_port());
    let config = DaemonConfig::new(&emulator, "hostile", "hostile")
        .udp(udp_port)
        .plugin_dir(&test_plugin_dir())
        .metrics(&format!("127.0.0.1:{metrics_port}"))
        .with("parser_workers: 1")
        .parser_with("timeout_ms: 1000")
        .parser_with("memory_mb: 256")
        .parser_with("max_flows_per_message: 50000");
    let mut daemon = Daemon::start("sandbox", &config.yaml());
    let metric = |name: &str| {
        flowlink_e2e::process::metric(
            &format!("127.0.0.1:{metrics_port}"),
            &format!("flowlink_{name}_total{{consumer=\"hostile\"}}"),
        )
    };

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = flowlink_e2e::traffic::v5_datagram(&flowlink_e2e::traffic::v5_records(30));
    let mut flood = b"FLOOD".to_vec();
    flood.extend_from_slice(&200_000u32.to_be_bytes());
    let faults: [(&[u8], &str); 4] = [
        (b"SPIN", "plugin_timeouts"),
        (b"HOG", "plugin_out_of_memory"),
        (b"PANIC", "plugin_traps"),
        (&flood, "plugin_over_cap"),
    ];
    for (round, (fault, counter)) in faults.iter().enumerate() {
        socket.send_to(fault, ("127.0.0.1", udp_port)).unwrap();
        let faulted = wait_for(Duration::from_secs(20), || {
            (metric(counter) == 1).then_some(())
        });
        assert!(
            faulted.is_some(),
            "{counter} not counted:\n{}",
            daemon.log()
        );
        socket.send_to(&good, ("127.0.0.1", udp_port)).unwrap();
        let want_parsed = 30 * (round as u64 + 1);
        let ok = wait_for(Duration::from_secs(20), || {
            (metric("flows_parsed") == want_parsed).then_some(())
        });
        assert!(
            ok.is_some(),
            "after {counter}: {:?}\n{}",
            scrape(&format!("127.0.0.1:{metrics_port}")),
            daemon.log()
        );
        assert!(
            daemon.is_running(),
            "daemon died after {counter}:\n{}",
            daemon.log()
        );
    }
    // SPIN, HOG and PANIC each cost the instance; the flood is refused by the
    // host after the call, so that instance lives on.
    assert_eq!(metric("plugin_restarts"), 3);
    assert_eq!(metric("messages_in"), 8);

    // A burst with a fault in the middle: however the worker batches it, the
    // fault costs only its own message.
    for _ in 0..5 {
        socket.send_to(&good, ("127.0.0.1", udp_port)).unwrap();
    }
    socket.send_to(b"PANIC", ("127.0.0.1", udp_port)).unwrap();
    for _ in 0..5 {
        socket.send_to(&good, ("127.0.0.1", udp_port)).unwrap();
    }
    let burst = wait_for(Duration::from_secs(20), || {
        (metric("flows_parsed") == 120 + 300 && metric("plugin_traps") == 2).then_some(())
    });
    assert!(
        burst.is_some(),
        "burst: {:?}\n{}",
        scrape(&format!("127.0.0.1:{metrics_port}")),
        daemon.log()
    );

    daemon.wait_log("exceeded its 1000 ms deadline", 1);
    daemon.wait_log("memory cap of 268435456 bytes", 1);
    // The panic message reaches the log.
    daemon.wait_log("hostile plugin panics on purpose", 1);
    daemon.wait_log("200000 records for one message, over the cap of 50000", 1);
    let log = daemon.log();
    assert!(
        log.contains("consumer=hostile") || log.contains("consumer=\"hostile\""),
        "{log}"
    );

    let delivered = wait_for(Duration::from_secs(20), || {
        let totals = emulator.totals();
        (totals.values().map(|t| t.0).sum::<u64>() == 420).then_some(())
    });
    assert!(
        delivered.is_some(),
        "the good datagrams' flows reach the PCE: {:?}",
        emulator.totals()
    );
    assert!(daemon.terminate().success());
}

#[test]
fn a_plugin_gets_no_files_environment_arguments_or_network() {
    let dir = flowlink_e2e::temp_dir("escape");
    // What the plugin will reach for, each shown to work without a sandbox.
    let secret = dir.join("secret.txt");
    let nonce = format!("nonce-{}", std::process::id());
    std::fs::write(&secret, &nonce).unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), nonce);
    assert!(std::fs::read_dir("/").unwrap().count() > 0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    listener.accept().expect("the control connection");
    listener.set_nonblocking(true).unwrap();
    let message = dir.join("escape.bin");
    std::fs::write(
        &message,
        format!("ESCAPE {} {port}", secret.display()).as_bytes(),
    )
    .unwrap();
    let plugin = test_plugin_dir().join("hostile.wasm");
    let out = std::process::Command::new(flowlink_e2e::flowlink_bin())
        .args([
            "decode",
            "--plugin",
            plugin.to_str().unwrap(),
            message.to_str().unwrap(),
        ])
        .env("FLOWLINK_SECRET_FOR_TEST", "must-not-leak")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let attempts = stderr
        .lines()
        .find(|l| l.contains("escape attempts:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    eprintln!("{attempts}");
    // No preopened folder: WASI finds no directory to resolve a path in.
    assert!(!attempts.contains(&nonce), "the file was read: {attempts}");
    assert!(attempts.contains("file=denied(NotFound)"), "{attempts}");
    assert!(attempts.contains("root=denied(NotFound)"), "{attempts}");
    assert!(attempts.contains("env=0"), "{attempts}");
    assert!(attempts.contains("args=0"), "{attempts}");
    assert!(attempts.contains("net=not-built"), "{attempts}");
    // The build that tries TCP imports wasi:sockets: it is refused before it
    // runs, naming the import.
    let net_plugin = test_plugin_dir().join("hostile-net.wasm");
    let out = std::process::Command::new(flowlink_e2e::flowlink_bin())
        .args([
            "decode",
            "--plugin",
            net_plugin.to_str().unwrap(),
            message.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("does not grant: wasi:sockets/"), "{stderr}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin's connection reached the listener"
    );
}

#[test]
fn a_plugin_that_keeps_faulting_is_circuit_broken_quarantined_and_a_new_build_closes_it() {
    let emulator = Emulator::start();
    let dir = flowlink_e2e::temp_dir("breaker");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let hostile = std::fs::read(test_plugin_dir().join("hostile.wasm")).unwrap();
    std::fs::write(plugins.join("hostile.wasm"), &hostile).unwrap();
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let config = DaemonConfig::new(&emulator, "hostile", "hostile")
        .udp(udp_port)
        .plugin_dir(&plugins)
        .metrics(&metrics)
        .with("parser_workers: 1")
        .with("quarantine_mb: 1")
        .parser_with("circuit_breaker: { faults: 3, messages: 10, max_backoff_seconds: 30 }");
    let mut daemon = Daemon::start_in(&dir, &config.yaml());
    let metric = |name: &str| {
        flowlink_e2e::process::metric(
            &metrics,
            &format!("flowlink_{name}_total{{consumer=\"hostile\"}}"),
        )
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |payload: &[u8]| {
        socket.send_to(payload, ("127.0.0.1", udp_port)).unwrap();
    };

    // Four traps (more than 3 of the last 10) open the breaker…
    for n in 0..4 {
        send(format!("PANIC {n}").as_bytes());
        let seen = wait_for(Duration::from_secs(20), || {
            (metric("plugin_traps") == n + 1).then_some(())
        });
        assert!(seen.is_some(), "{}", daemon.log());
    }
    daemon.wait_log("plugin circuit-broken", 1);
    // …and what follows within the backoff is not given to the plugin.
    for n in 4..10 {
        send(format!("PANIC {n}").as_bytes());
    }
    let refused = wait_for(Duration::from_secs(20), || {
        (metric("plugin_circuit_open") + metric("plugin_traps") + metric("messages_not_tried")
            >= 10)
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "{:?}\n{}",
        scrape(&metrics),
        daemon.log()
    );
    assert!(metric("plugin_circuit_open") >= 1, "{:?}", scrape(&metrics));
    assert_eq!(
        metric("plugin_circuit_open") + metric("plugin_traps") + metric("messages_not_tried"),
        10
    );

    // Every one of the ten is in quarantine, byte for byte, and replays.
    let quarantine = dir.join("data/quarantine/hostile/worker-0");
    let kept = wait_for(Duration::from_secs(10), || {
        let files: Vec<_> = std::fs::read_dir(&quarantine)
            .ok()?
            .map(|e| e.unwrap().path())
            .collect();
        (files.len() == 10).then_some(files)
    })
    .unwrap_or_else(|| {
        panic!(
            "quarantine: {:?}",
            std::fs::read_dir(&quarantine).map(|d| d.count())
        )
    });
    let mut payloads: Vec<String> = kept
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    payloads.sort();
    assert_eq!(
        payloads,
        (0..10).map(|n| format!("PANIC {n}")).collect::<Vec<_>>()
    );
    assert_eq!(metric("messages_quarantined"), 10);
    let replay = std::process::Command::new(flowlink_e2e::flowlink_bin())
        .args([
            "decode",
            "--plugin",
            test_plugin_dir().join("hostile.wasm").to_str().unwrap(),
        ])
        .arg(&kept[0])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&replay.stderr).contains("plugin trapped"),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );

    // A new build closes the breaker at once: good traffic flows again.
    flowlink_e2e::install_plugin(
        &plugins,
        "hostile.wasm",
        &flowlink_e2e::rebuilt_component(&hostile, "fixed"),
    );
    daemon.wait_log("swapped in a new plugin build", 1);
    let good = flowlink_e2e::traffic::v5_datagram(&flowlink_e2e::traffic::v5_records(30));
    send(&good);
    let parsed = wait_for(Duration::from_secs(20), || {
        (metric("flows_parsed") == 30).then_some(())
    });
    assert!(parsed.is_some(), "{:?}\n{}", scrape(&metrics), daemon.log());
    daemon.wait_log("plugin circuit closed: a new build was swapped in", 1);
    let delivered = wait_for(Duration::from_secs(20), || {
        (emulator.totals().values().map(|t| t.1).sum::<u64>()
            == (0..30).map(|i| 10 + i).sum::<u64>())
        .then_some(())
    });
    assert!(delivered.is_some(), "{:?}", emulator.totals());
    assert!(daemon.terminate().success());
}

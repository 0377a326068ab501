//! Hot swap: a new build of a plugin dropped into `plugin_dir` while the
//! daemon runs takes over between two messages, keeps the templates the old
//! one learned, and loses no datagram; a broken build is refused and the
//! running one stays.

use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, datagram_files, expected_aggregation, free_tcp_port,
    free_udp_port, install_plugin, plugin_dir, read_flows_csv, rebuilt_component, scrape,
    send_datagrams, temp_dir, wait_for,
};

#[test]
fn a_new_build_takes_over_with_its_templates_and_a_broken_one_is_refused() {
    let _alone = super::alone();
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

    install_plugin(
        &plugins,
        "netflow.wasm",
        &rebuilt_component(&original, "build 2"),
    );
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
    install_plugin(&plugins, "netflow.wasm", b"\0asm not even close");
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

#[test]
fn ten_swaps_under_twenty_thousand_datagrams_a_second_lose_no_record() {
    let _alone = super::alone();
    let emulator = Emulator::start();
    let dir = temp_dir("swap-load");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let original = std::fs::read(plugin_dir().join("netflow.wasm")).unwrap();
    std::fs::write(plugins.join("netflow.wasm"), &original).unwrap();
    let (udp_port, metrics) = (free_udp_port(), format!("127.0.0.1:{}", free_tcp_port()));
    let config = DaemonConfig::new(&emulator, "load", "netflow")
        .udp(udp_port)
        .metrics(&metrics)
        .plugin_dir(&plugins)
        .window_seconds(5);
    let mut daemon = Daemon::start_in(&dir, &config.yaml());
    let counter = |name: &str| {
        flowlink_e2e::process::metric(
            &metrics,
            &format!("flowlink_{name}_total{{consumer=\"load\"}}"),
        )
    };

    // softflowd's templates travel in its datagrams 1 and 17: sent once,
    // then only data datagrams, looped.
    let files = datagram_files("softflowd_v9");
    let (templates, data): (Vec<_>, Vec<_>) = files
        .iter()
        .enumerate()
        .partition(|(i, _)| *i == 0 || *i == 16);
    let csv = read_flows_csv("softflowd_v9");
    let in_frames = |frames: &[usize]| -> (u64, u64) {
        csv.iter()
            .filter(|f| frames.contains(&(f.frame as usize - 1)))
            .fold((0, 0), |(n, p), f| (n + 1, p + f.packets))
    };
    let (template_flows, template_packets) = in_frames(&[0, 16]);
    let data_frames: Vec<usize> = data.iter().map(|(i, _)| *i).collect();
    let (data_flows, data_packets) = in_frames(&data_frames);
    let replay = |files: &[&std::path::PathBuf], rate: &str, loops: &str| {
        let mut command = std::process::Command::new(flowlink_e2e::flowlink_bin());
        command
            .args([
                "replay",
                "--to",
                &format!("127.0.0.1:{udp_port}"),
                "--rate",
                rate,
                "--loop",
                loops,
            ])
            .args(files.iter().map(|f| f.as_os_str()));
        command
    };
    let template_files: Vec<_> = templates.iter().map(|(_, f)| *f).collect();
    assert!(
        replay(&template_files, "0", "1")
            .status()
            .unwrap()
            .success()
    );
    let taught = wait_for(Duration::from_secs(20), || {
        (counter("flows_parsed") == template_flows).then_some(())
    });
    assert!(taught.is_some(), "{}", daemon.log());

    // 21 data datagrams a pass, 12,000 passes at 20,000 a second: 12.6 s,
    // room for ten swaps of ~0.5 s each on a busy machine.
    let loops = 12_000u64;
    let data_files: Vec<_> = data.iter().map(|(_, f)| *f).collect();
    let mut sender = replay(&data_files, "20000", &loops.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for build in 1..=10 {
        install_plugin(
            &plugins,
            "netflow.wasm",
            &rebuilt_component(&original, &format!("build {build}")),
        );
        daemon.wait_log("swapped in a new plugin build", build);
    }
    assert!(sender.wait().unwrap().success());

    let want = template_flows + data_flows * loops;
    let parsed = wait_for(Duration::from_secs(60), || {
        (counter("flows_parsed") == want).then_some(())
    });
    assert!(
        parsed.is_some(),
        "parsed {} of {want}: {:?}\n{}",
        counter("flows_parsed"),
        scrape(&metrics),
        daemon.log()
    );
    assert_eq!(
        counter("records_rejected"),
        0,
        "no record waits for a template"
    );
    assert_eq!(counter("queue_drops") + counter("kernel_drops"), 0);
    let packets = template_packets + data_packets * loops;
    let delivered = wait_for(Duration::from_secs(30), || {
        (emulator.totals().values().map(|t| t.1).sum::<u64>() == packets).then_some(())
    });
    assert!(
        delivered.is_some(),
        "packets at the PCE: {:?}",
        emulator.totals().values().map(|t| t.1).sum::<u64>()
    );

    // The pause each move cost the worker that made it.
    let mut pauses: Vec<u64> = daemon
        .log()
        .lines()
        .filter(|l| l.contains("worker moved to the new plugin build"))
        .filter_map(|l| {
            l.split("pause_us=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    pauses.sort_unstable();
    assert!(pauses.len() >= 10, "{pauses:?}");
    eprintln!(
        "swap pause over {} moves: p50 {} µs, p99 {} µs",
        pauses.len(),
        pauses[pauses.len() / 2],
        pauses[(pauses.len() - 1) * 99 / 100]
    );
    assert!(daemon.terminate().success());
}

//! No flow lost while the PCE is down: the real daemon and the real PCE
//! emulator, with the emulator failing in the ways a PCE does.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET};
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, datagram_files, distinct_key_datagrams, expected_aggregation,
    free_tcp_port, free_udp_port, read_flows_csv, scrape, send_datagrams, temp_dir, wait_for,
};
use serde_json::json;

struct Setup {
    emulator: Emulator,
    udp_port: u16,
    metrics: String,
}

impl Setup {
    fn new(emulator_args: &[&str]) -> Setup {
        Setup {
            emulator: Emulator::start_with(&[&["--listen", "127.0.0.1:0"], emulator_args].concat()),
            udp_port: free_udp_port(),
            metrics: format!("127.0.0.1:{}", free_tcp_port()),
        }
    }

    /// The test's daemon: consumer `edge`, org 3, metrics on.
    fn config(&self) -> DaemonConfig {
        DaemonConfig::new(&self.emulator, "edge", "netflow")
            .udp(self.udp_port)
            .metrics(&self.metrics)
            .with("org_id: 3")
    }

    fn metric(&self, name: &str) -> u64 {
        flowlink_e2e::process::metric(&self.metrics, &format!("flowlink_{name}"))
    }

    fn wait_metric(&self, daemon: &Daemon, name: &str, at_least: u64) {
        let ok = wait_for(Duration::from_secs(30), || {
            (self.metric(name) >= at_least).then_some(())
        });
        assert!(
            ok.is_some(),
            "{name} never reached {at_least}: {:?}\n{}",
            scrape(&self.metrics),
            daemon.log()
        );
    }

    fn wait_closed_windows(&self, count: u64) {
        let closed = wait_for(Duration::from_secs(30), || {
            let done = self.metric("batches_uploaded_total") + self.metric("batches_spooled_total");
            (done >= count).then_some(())
        });
        assert!(closed.is_some(), "window {count} never closed");
    }

    /// The softflowd v5 capture, split over `windows` one-second windows.
    fn send_capture_over(&self, windows: usize) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let files = datagram_files("softflowd_v5");
        for (i, chunk) in files.chunks(files.len().div_ceil(windows)).enumerate() {
            if i > 0 {
                // The window holding the last chunk closed (uploaded or
                // spooled) before the next chunk goes.
                self.wait_closed_windows(i as u64);
            }
            for file in chunk {
                socket
                    .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", self.udp_port))
                    .unwrap();
            }
        }
    }

    fn assert_all_delivered(&self, daemon: &Daemon) {
        let expected = expected_aggregation(&read_flows_csv("softflowd_v5"));
        let ok = wait_for(Duration::from_secs(30), || {
            (self.emulator.totals() == expected).then_some(())
        });
        assert!(
            ok.is_some(),
            "totals differ: {} of {} keys\n{}",
            self.emulator.totals().len(),
            expected.len(),
            daemon.log()
        );
        let received = self.emulator.received();
        assert_eq!(
            received["duplicate_batches"], 0,
            "a batch was counted twice"
        );
        // Nothing is sent again once the PCE has acknowledged it.
        let requests = self.emulator.requests();
        for acked in requests.iter().filter(|r| r["status"] == 200) {
            let id = &acked["batch_id"];
            let later = requests.iter().filter(|r| {
                r["batch_id"] == *id && r["time_ms"].as_u64() > acked["time_ms"].as_u64()
            });
            assert_eq!(
                later.count(),
                0,
                "batch {id} sent again after its acknowledgement"
            );
        }
    }
}

fn spool_files(dir: &Path, folder: &str) -> Vec<String> {
    std::fs::read_dir(dir.join("data").join(folder))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pce_down_for_three_windows_loses_nothing() {
    let setup = Setup::new(&["--fault", "unavailable"]);
    let mut daemon = Daemon::start("outage", &setup.config().yaml());
    setup.send_capture_over(3);
    setup.wait_metric(&daemon, "batches_spooled_total", 3);
    assert!(setup.emulator.totals().is_empty());

    setup.emulator.set_fault(json!({"mode": "ok"}));
    setup.assert_all_delivered(&daemon);
    setup.wait_metric(&daemon, "batches_replayed_total", 3);
    assert_eq!(setup.metric("spool_batches"), 0, "spool empty again");
    assert!(daemon.terminate().success());
}

#[test]
fn sigkill_with_a_full_spool_then_restart_drains_it() {
    let dir = temp_dir("sigkill");
    let state = dir.join("emulator-state.jsonl");
    let setup = Setup::new(&["--fault", "refuse", "--state-file", state.to_str().unwrap()]);
    let config = setup.config().yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    setup.send_capture_over(2);
    setup.wait_metric(&daemon, "flows_aggregated_total{consumer=\"edge\"}", 343);
    // Every window closed and spooled (none left open in memory).
    let spooled = wait_for(Duration::from_secs(20), || {
        let files = spool_files(&dir, "spool");
        (setup.metric("batches_spooled_total") >= 2
            && files.len() as u64 == setup.metric("batches_spooled_total"))
        .then_some(files)
    });
    assert!(spooled.is_some(), "{}", daemon.log());
    daemon.kill();

    setup.emulator.set_fault(json!({"mode": "ok"}));
    let restarted = Daemon::start_in(&dir, &config);
    restarted.wait_log("spool holds batches from an earlier run", 1);
    setup.assert_all_delivered(&restarted);
    assert!(spool_files(&dir, "spool").is_empty());
}

#[test]
fn a_tiny_spool_prunes_the_oldest_and_says_how_much_was_lost() {
    let setup = Setup::new(&["--fault", "unavailable"]);
    // One kilobyte: every batch of this capture is bigger, so only the
    // newest survives each push.
    let mut daemon = Daemon::start(
        "prune",
        &setup.config().with("data_directory_size_kb: 1").yaml(),
    );
    setup.send_capture_over(3);
    setup.wait_metric(&daemon, "batches_pruned_total", 2);
    daemon.wait_log("pruned the oldest spooled batches", 1);
    let pruned_flows = setup.metric("flows_pruned_total");
    assert!(pruned_flows > 0);
    let said = || -> u64 {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("pruned the oldest spooled batches"))
            .filter_map(|l| {
                l.split("flows=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    // The counters move just before the line is written.
    let stated = wait_for(Duration::from_secs(30), || {
        (said() == pruned_flows).then_some(())
    });
    assert!(
        stated.is_some(),
        "the log states the flows lost ({} of {pruned_flows}): {}",
        said(),
        daemon.log()
    );

    setup.emulator.set_fault(json!({"mode": "ok"}));
    setup.wait_metric(&daemon, "batches_replayed_total", 1);
    let spooled = setup.metric("batches_spooled_total");
    let ok = wait_for(Duration::from_secs(20), || {
        (setup.metric("batches_replayed_total") + setup.metric("batches_pruned_total") == spooled)
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "every spooled batch is either replayed or pruned: {:?}",
        scrape(&setup.metrics)
    );
    // The PCE got exactly the batches that were not pruned.
    assert_eq!(
        setup.emulator.received()["batches"].as_u64().unwrap(),
        setup.metric("batches_replayed_total")
    );
    assert!(daemon.terminate().success());
}

#[test]
fn retry_after_of_a_429_is_honoured() {
    let setup = Setup::new(&["--fault", "too_many_requests", "--retry-after", "3"]);
    let mut daemon = Daemon::start("429", &setup.config().yaml());
    setup.send_capture_over(1);
    let refused = wait_for(Duration::from_secs(30), || {
        let r: Vec<_> = setup
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r["status"] == 429)
            .collect();
        (r.len() >= 2).then_some(r)
    });
    let refused = refused.unwrap_or_else(|| panic!("no two 429s: {}", daemon.log()));
    let gap = refused[1]["time_ms"].as_u64().unwrap() - refused[0]["time_ms"].as_u64().unwrap();
    assert!(
        gap >= 2900,
        "retried after {gap} ms, Retry-After said 3 s (spool_retry_seconds is 1)"
    );
    setup.emulator.set_fault(json!({"mode": "ok"}));
    setup.assert_all_delivered(&daemon);
    assert!(daemon.terminate().success());
}

#[test]
fn a_401_says_what_to_check_and_keeps_the_batch() {
    let setup = Setup::new(&[]);
    let dir = temp_dir("401");
    let config = setup.config().secret("wrong-secret-value").yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    setup.send_capture_over(1);
    setup.wait_metric(&daemon, "batches_set_aside_total", 1);
    daemon.wait_log("check api_key", 1);
    let log = daemon.log();
    assert!(
        log.contains("401") && log.contains("check api_key"),
        "{log}"
    );
    assert!(
        !log.contains("wrong-secret-value"),
        "the secret never reaches the log"
    );
    let kept = spool_files(&dir, "rejected");
    assert!(kept.iter().any(|f| f.ends_with(".batch")), "{kept:?}");
    let answer = kept
        .iter()
        .find(|f| f.ends_with(".txt"))
        .expect("the PCE's answer beside it");
    let text = std::fs::read_to_string(dir.join("data/rejected").join(answer)).unwrap();
    assert!(text.contains("401"), "{text}");
    assert!(daemon.terminate().success());
}

#[test]
fn a_corrupt_spool_file_is_quarantined_and_the_rest_flows() {
    let setup = Setup::new(&[]);
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(dir.join("data/spool")).unwrap();
    std::fs::write(
        dir.join("data/spool/0000000000001-000000.batch"),
        b"FLSPOOL1 torn in half",
    )
    .unwrap();
    let mut daemon = Daemon::start_in(&dir, &setup.config().yaml());
    setup.send_capture_over(1);
    setup.assert_all_delivered(&daemon);
    assert_eq!(setup.metric("spool_corrupt_total"), 1);
    assert!(dir.join("data/corrupt/0000000000001-000000.batch").exists());
    daemon.wait_log("unreadable", 1);
    assert!(daemon.terminate().success());
}

#[test]
fn bulk_csv_batches_are_split_at_1000_lines() {
    let setup = Setup::new(&[]);
    let mut daemon = Daemon::start(
        "bulk",
        &setup.config().with("upload_format: bulk_csv").yaml(),
    );
    // 1200 distinct keys in one window.
    send_datagrams(&distinct_key_datagrams(40), setup.udp_port);
    let ok = wait_for(Duration::from_secs(30), || {
        (setup.emulator.received()["csv_lines"] == 1200).then_some(())
    });
    assert!(
        ok.is_some(),
        "{}\n{}",
        setup.emulator.received(),
        daemon.log()
    );
    let posts: Vec<_> = setup
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r["endpoint"] == "bulk_traffic_flows")
        .collect();
    assert!(
        posts.len() >= 2 && posts.iter().all(|r| r["status"] == 200),
        "{posts:?}"
    );
    assert_eq!(setup.emulator.totals().len(), 1200);

    // And the emulator refuses more than 1000 lines, as the PCE does.
    let body: String = (0..1001)
        .map(|i| format!("10.0.{}.{},10.1.0.1,443,6\n", i / 256, i % 256))
        .collect();
    let auth = format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{EMULATOR_KEY}:{EMULATOR_SECRET}"))
    );
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut request = ureq::post(&format!(
            "{}/api/v2/orgs/3/agents/bulk_traffic_flows",
            setup.emulator.url
        ))
        .header("Authorization", &auth);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request
            .config()
            .http_status_as_error(false)
            .build()
            .send(body)
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), text)
    };
    let loader_headers = [
        ("Content-Type", "text/csv"),
        ("X-Bulk-Traffic-Load-CSV-Version", "1"),
    ];
    assert_eq!(post(&loader_headers, &body).0, 413);
    // The Bulk Traffic Loader's headers, as the PCE's own clients send them.
    let one = "10.9.0.1,10.1.0.1,443,6\n";
    let (status, text) = post(&[("Content-Type", "text/csv")], one);
    assert_eq!(status, 400);
    assert!(text.contains("X-Bulk-Traffic-Load-CSV-Version"), "{text}");
    let (status, text) = post(
        &[
            ("Content-Type", "application/json"),
            ("X-Bulk-Traffic-Load-CSV-Version", "1"),
        ],
        one,
    );
    assert_eq!(status, 400);
    assert!(text.contains("text/csv"), "{text}");
    assert!(daemon.terminate().success());
}

#[test]
fn the_emulator_keeps_what_it_accepted_across_restarts() {
    let dir = temp_dir("emulator-state");
    let state = dir.join("state.jsonl");
    let port = free_tcp_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--listen",
        listen.as_str(),
        "--state-file",
        state.to_str().unwrap(),
    ];
    let setup = Setup {
        emulator: Emulator::start_with(&args),
        udp_port: free_udp_port(),
        metrics: format!("127.0.0.1:{}", free_tcp_port()),
    };
    let mut daemon = Daemon::start_in(&dir, &setup.config().yaml());
    setup.send_capture_over(1);
    setup.assert_all_delivered(&daemon);
    assert!(daemon.terminate().success());
    let before = setup.emulator.totals();
    drop(setup);
    let again = Emulator::start_with(&args);
    assert_eq!(again.totals(), before);
}

#[test]
fn two_daemons_cannot_share_a_data_directory() {
    let setup = Setup::new(&[]);
    let dir = temp_dir("lock");
    let mut first = Daemon::start_in(&dir, &setup.config().yaml());
    // Same directory, other ports.
    let other = Setup {
        emulator: Emulator::start(),
        udp_port: free_udp_port(),
        metrics: format!("127.0.0.1:{}", free_tcp_port()),
    };
    std::fs::write(dir.join("second.yaml"), other.config().yaml()).unwrap();
    let out = std::process::Command::new(flowlink_e2e::flowlink_bin())
        .args(["run", "--config"])
        .arg(dir.join("second.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is in use by another flowlink process"),
        "{stderr}"
    );
    assert!(first.is_running());
    assert!(first.terminate().success());
}

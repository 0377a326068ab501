//! State that survives: templates outlive a restart, a crash, a change of
//! `parser_workers` and a plugin fault; open windows outlive a SIGKILL; a
//! stop with the PCE hanging still ends in time with the window spooled.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowlink_e2e::process::wait_metric;
use flowlink_e2e::{
    CsvFlow, Daemon, DaemonConfig, Emulator, datagram_files, expected_aggregation, free_tcp_port,
    free_udp_port, read_flows_csv, temp_dir, test_plugin_dir, wait_file_resume_point, wait_for,
};

fn send_from(source: &str, files: &[PathBuf], port: u16) {
    let socket = UdpSocket::bind((source, 0)).unwrap();
    for file in files {
        socket
            .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", port))
            .unwrap();
    }
}

/// tshark's rows of datagrams `frames` of a capture.
fn rows(job: &str, frames: std::ops::RangeInclusive<u32>) -> Vec<CsvFlow> {
    read_flows_csv(job)
        .into_iter()
        .filter(|f| frames.contains(&f.frame))
        .collect()
}

/// The files written whole in `dir`: not the `.NAME.tmp` a write in
/// progress leaves before its rename (a SIGKILL then loses it).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Run {
    emulator: Emulator,
    dir: PathBuf,
    port: u16,
}

impl Run {
    fn new(name: &str) -> Run {
        Run {
            emulator: Emulator::start(),
            dir: temp_dir(name),
            port: free_udp_port(),
        }
    }

    /// A daemon on the run's directory (same data_directory every time).
    fn daemon(&self, workers: usize, extra: &[&str]) -> (Daemon, String) {
        let metrics = format!("127.0.0.1:{}", free_tcp_port());
        let mut config = DaemonConfig::new(&self.emulator, "routers", "netflow")
            .udp(self.port)
            .metrics(&metrics)
            .window_seconds(3600)
            .with(&format!("parser_workers: {workers}"));
        for line in extra {
            config = config.with(line);
        }
        (Daemon::start_in(&self.dir, &config.yaml()), metrics)
    }
}

const PARSED: &str = "flowlink_flows_parsed_total{consumer=\"routers\"}";
const REJECTED: &str = "flowlink_records_rejected_total{consumer=\"routers\"}";

/// softflowd sends its templates in datagrams 1 and 17 only: datagrams
/// 2–16 decode after a restart only if the templates of datagram 1 did.
fn templates_survive(job: &str, workers: (usize, usize), crash: bool) {
    let run = Run::new(&format!("state-{job}-{}", workers.1));
    let files = datagram_files(job);
    let (mut first, metrics) = run.daemon(workers.0, &["checkpoint_seconds: 1"]);
    send_from("127.0.0.1", &files[..1], run.port);
    wait_metric(&first, &metrics, PARSED, rows(job, 1..=1).len() as u64);
    if crash {
        // SIGKILL once the templates and the window are on disk (the first
        // snapshot is taken at once, the window within checkpoint_seconds).
        let on_disk = wait_for(Duration::from_secs(30), || {
            let state = files_in(&run.dir.join("data/parser-state/routers"));
            let windows = files_in(&run.dir.join("data/windows"));
            (!state.is_empty() && !windows.is_empty()).then_some(())
        });
        assert!(on_disk.is_some(), "{}", first.log());
        first.kill();
    } else {
        assert!(first.terminate().success());
    }
    let (mut second, metrics) = run.daemon(workers.1, &[]);
    send_from("127.0.0.1", &files[1..16], run.port);
    wait_metric(&second, &metrics, PARSED, rows(job, 2..=16).len() as u64);
    assert_eq!(flowlink_e2e::process::metric(&metrics, REJECTED), 0);
    assert!(second.terminate().success());
    assert_eq!(
        run.emulator.totals(),
        expected_aggregation(&rows(job, 1..=16)),
        "{}",
        second.log()
    );
}

#[test]
fn netflow_v9_templates_survive_a_restart() {
    templates_survive("softflowd_v9", (2, 2), false);
}

#[test]
fn ipfix_templates_survive_a_restart() {
    templates_survive("softflowd_v10", (2, 2), false);
}

#[test]
fn templates_and_the_open_window_survive_sigkill() {
    templates_survive("softflowd_v9", (2, 2), true);
    templates_survive("softflowd_v10", (2, 2), true);
}

#[test]
fn templates_survive_a_change_of_parser_workers() {
    templates_survive("softflowd_v9", (1, 3), false);
    templates_survive("softflowd_v10", (3, 1), false);
}

/// One worker, two exporters: a trap on 127.0.0.2's message rebuilds the
/// instance from the last snapshot, so 127.0.0.1's templates stay.
#[test]
fn a_plugin_fault_on_one_exporter_costs_no_other_exporters_templates() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let mut daemon = Daemon::start(
        "state-trap",
        &DaemonConfig::new(&emulator, "routers", "hostile")
            .udp(port)
            .metrics(&metrics)
            .plugin_dir(&test_plugin_dir())
            .with("parser_workers: 1")
            .yaml(),
    );
    let files = datagram_files("softflowd_v9");
    send_from("127.0.0.1", &files[..1], port);
    wait_metric(
        &daemon,
        &metrics,
        PARSED,
        rows("softflowd_v9", 1..=1).len() as u64,
    );
    let socket = UdpSocket::bind(("127.0.0.2", 0)).unwrap();
    socket.send_to(b"PANIC", ("127.0.0.1", port)).unwrap();
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_plugin_traps_total{consumer=\"routers\"}",
        1,
    );
    send_from("127.0.0.1", &files[1..16], port);
    wait_metric(
        &daemon,
        &metrics,
        PARSED,
        rows("softflowd_v9", 1..=16).len() as u64,
    );
    assert!(daemon.terminate().success());
}

/// The PCE accepts the connection and never answers: a stop waits
/// `shutdown_upload_seconds`, then spools the window and exits.
#[test]
fn sigterm_while_the_pce_hangs_spools_the_window_in_time() {
    let emulator = Emulator::start_with(&[
        "--listen",
        "127.0.0.1:0",
        "--fault",
        "slow",
        "--delay-ms",
        "120000",
    ]);
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let dir = temp_dir("state-hang");
    let mut daemon = Daemon::start_in(
        &dir,
        &DaemonConfig::new(&emulator, "routers", "netflow")
            .udp(port)
            .metrics(&metrics)
            .window_seconds(3600)
            .with("shutdown_upload_seconds: 2")
            .yaml(),
    );
    send_from("127.0.0.1", &datagram_files("softflowd_v5"), port);
    wait_metric(&daemon, &metrics, PARSED, 343);
    let asked = Instant::now();
    assert!(daemon.terminate().success(), "{}", daemon.log());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let spooled = files_in(&dir.join("data/spool"));
    assert_eq!(spooled.len(), 1, "{spooled:?}\n{}", daemon.log());
}

/// A file source: the resume point moves only past records whose window is
/// on disk, so a SIGKILL loses nothing and the restart reads nothing twice.
#[test]
fn file_records_survive_sigkill_exactly_once() {
    let emulator = Emulator::start();
    let dir = temp_dir("state-file");
    let input = dir.join("flows.log");
    let line = |n: u32| {
        format!(
            "2 123456789012 eni-1 10.50.{}.{} 10.60.0.1 40000 443 6 {n} {} 1795867200 1795867260 ACCEPT OK\n",
            n / 250,
            n % 250 + 1,
            100 * n
        )
    };
    let expected = |range: std::ops::Range<u32>| {
        let mut totals = flowlink_e2e::process::Totals::new();
        for n in range {
            totals.insert(
                (
                    format!("10.50.{}.{}", n / 250, n % 250 + 1),
                    "10.60.0.1".into(),
                    443,
                    6,
                ),
                (1, u64::from(n), 100 * u64::from(n)),
            );
        }
        totals
    };
    std::fs::write(&input, (1..301).map(line).collect::<String>()).unwrap();
    let config = DaemonConfig::new(&emulator, "vpc", "vpc-flow")
        .file_tail(&input)
        .window_seconds(3600)
        .with("checkpoint_seconds: 1")
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    // The file's resume point reaches the end only once the window holding
    // its records is on disk.
    let len = std::fs::metadata(&input).unwrap().len();
    wait_file_resume_point(&daemon, &dir.join("data"), len);
    assert!(
        !files_in(&dir.join("data/windows")).is_empty(),
        "the window is on disk before the resume point moves"
    );
    daemon.kill();
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    std::io::Write::write_all(
        &mut more,
        (301..401).map(line).collect::<String>().as_bytes(),
    )
    .unwrap();
    let mut daemon = Daemon::start_in(&dir, &config);
    // The window the crash left open is uploaded at start; the rest at the
    // stop, once the tail has taken it.
    let len = std::fs::metadata(&input).unwrap().len();
    wait_file_resume_point(&daemon, &dir.join("data"), len);
    let mut all = expected(1..301);
    all.extend(expected(301..401));
    assert!(daemon.terminate().success());
    flowlink_e2e::assert_totals(&emulator, &daemon, &all, "after SIGKILL");
}

//! Signals never lose data: SIGHUP reloads the configuration file (only
//! what changed is touched), and a SIGTERM during start-up ends it cleanly.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use flowlink_e2e::process::wait_metric;
use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET, Totals};
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, datagram_files, expected_aggregation, free_tcp_port,
    free_udp_port, plugin_dir, read_flows_csv, temp_dir, wait_for,
};

const UNCHANGED: &str = "SIGHUP: configuration reloaded, nothing changed";

/// A daemon config with several consumers: `(name, parser yaml, udp port)`.
/// One-hour windows, so only a flush we cause uploads anything.
fn config_yaml(emulator: &Emulator, metrics: &str, consumers: &[(&str, &str, u16)]) -> String {
    let mut yaml = format!(
        "pce_addr: {}\napi_key: \"{EMULATOR_KEY}:{EMULATOR_SECRET}\"\naggregation_seconds: 3600\n\
         data_directory: data\nplugin_dir: {}\nmetrics_listen: {metrics}\nconsumers:\n",
        emulator.url,
        plugin_dir().display()
    );
    for (name, parser, port) in consumers {
        yaml.push_str(&format!(
            "  - name: {name}\n    connector: {{ type: udp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1 }} }}\n    parser: {parser}\n"
        ));
    }
    yaml
}

const TEXT_PARSER: &str = "{ type: text, properties: { src_ip: sip, dst_ip: dip, dst_port: dport, protocol: prot, packets: pkts, bytes: bytes } }";

/// `count` kv lines from 10.`net`.0.N to 10.200.0.1:443/tcp, N packets and
/// 100·N bytes each, sent as UDP datagrams; and what the PCE must show.
fn send_kv(port: u16, net: u8, count: u8, expected: &mut Totals) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 1..=count {
        let line = format!(
            "sip=10.{net}.0.{n} dip=10.200.0.1 dport=443 prot=tcp pkts={n} bytes={}",
            100 * u64::from(n)
        );
        socket
            .send_to(line.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        let t = expected
            .entry((format!("10.{net}.0.{n}"), "10.200.0.1".into(), 443, 6))
            .or_insert((0, 0, 0));
        t.0 += 1;
        t.1 += u64::from(n);
        t.2 += 100 * u64::from(n);
    }
}

fn send_files(files: &[std::path::PathBuf], port: u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for file in files {
        socket
            .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", port))
            .unwrap();
    }
}

fn counter(metrics: &str, name: &str) -> u64 {
    flowlink_e2e::process::metric(metrics, name)
}

/// softflowd sends its v9 templates in datagrams 1 and 17 only: data
/// datagrams 2–16, sent after five reloads, decode only if the templates
/// learned before them survived.
#[test]
fn five_sighups_during_a_netflow_stream_lose_nothing() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let dir = temp_dir("reload-unchanged");
    let yaml = config_yaml(
        &emulator,
        &metrics,
        &[("routers", "{ type: netflow }", port)],
    );
    let mut daemon = Daemon::start_in(&dir, &yaml);
    let files = datagram_files("softflowd_v9");
    let records_per_datagram: Vec<u64> = {
        let csv = read_flows_csv("softflowd_v9");
        (1..=files.len())
            .map(|frame| csv.iter().filter(|f| f.frame == frame as u32).count() as u64)
            .collect()
    };
    send_files(&files[..1], port);
    let parsed = "flowlink_flows_parsed_total{consumer=\"routers\"}";
    wait_metric(&daemon, &metrics, parsed, records_per_datagram[0]);
    for (i, chunk) in [1..4, 4..7, 7..10, 10..13, 13..16].into_iter().enumerate() {
        daemon.signal(libc::SIGHUP);
        send_files(&files[chunk.clone()], port);
        daemon.wait_log(UNCHANGED, i + 1);
    }
    // Every record of datagrams 1–16 decoded: no template was lost.
    wait_metric(
        &daemon,
        &metrics,
        parsed,
        records_per_datagram[..16].iter().sum(),
    );
    send_files(&files[16..], port);
    wait_metric(&daemon, &metrics, parsed, records_per_datagram.iter().sum());
    assert_eq!(
        counter(
            &metrics,
            "flowlink_config_reloads_total{result=\"unchanged\"}"
        ),
        5
    );
    assert_eq!(emulator.received()["batches"], 0, "no window flushed early");
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected_aggregation(&read_flows_csv("softflowd_v9"))
    );
    assert_eq!(
        emulator.received()["batches"],
        1,
        "one window, flushed at the stop"
    );
}

#[test]
fn sighup_adds_changes_and_removes_consumers_and_leaves_the_others_alone() {
    let emulator = Emulator::start();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let (keep, gone, added) = (free_udp_port(), free_udp_port(), free_udp_port());
    let changes = free_udp_port();
    // The same parser with another deadline: a new session, the window kept.
    let text_parser_changed = TEXT_PARSER.replace("type: text,", "type: text, timeout_ms: 500,");
    let dir = temp_dir("reload-consumers");
    let before = config_yaml(
        &emulator,
        &metrics,
        &[
            ("keep", "{ type: netflow }", keep),
            ("gone", TEXT_PARSER, gone),
            ("changes", TEXT_PARSER, changes),
        ],
    );
    let mut daemon = Daemon::start_in(&dir, &before);
    let mut expected_gone = Totals::new();
    send_kv(gone, 90, 20, &mut expected_gone);
    let mut expected_changes = Totals::new();
    send_kv(changes, 92, 5, &mut expected_changes);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"changes\"}",
        5,
    );
    send_files(&datagram_files("softflowd_v5"), keep);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"gone\"}",
        20,
    );
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"keep\"}",
        343,
    );

    let after = config_yaml(
        &emulator,
        &metrics,
        &[
            ("keep", "{ type: netflow }", keep),
            ("added", TEXT_PARSER, added),
            ("changes", &text_parser_changed, changes),
        ],
    );
    std::fs::write(dir.join("flowlink.yaml"), after).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("SIGHUP: configuration reloaded: removed \"gone\"", 1);
    // The removed consumer's open window was uploaded, and only it.
    let flushed = wait_for(Duration::from_secs(30), || {
        (emulator.totals() == expected_gone).then_some(())
    });
    assert!(
        flushed.is_some(),
        "{:?}\n{}",
        emulator.totals(),
        daemon.log()
    );
    daemon.wait_log("added \"added\"", 1);
    daemon.wait_log("restarted \"changes\" (parser)", 1);
    send_kv(changes, 93, 5, &mut expected_changes);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"changes\"}",
        10,
    );

    let mut expected = expected_gone.clone();
    expected.extend(expected_changes);
    send_kv(added, 91, 10, &mut expected);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"added\"}",
        10,
    );
    // The untouched consumer's window still holds what came before the
    // reload; more arrives into it.
    send_files(&datagram_files("softflowd_v5"), keep);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"keep\"}",
        686,
    );
    assert_eq!(
        counter(
            &metrics,
            "flowlink_config_reloads_total{result=\"applied\"}"
        ),
        1
    );
    assert!(daemon.terminate().success());
    for (key, (connections, packets, bytes)) in
        expected_aggregation(&read_flows_csv("softflowd_v5"))
    {
        let t = expected.entry(key).or_insert((0, 0, 0));
        *t = (t.0 + 2 * connections, t.1 + 2 * packets, t.2 + 2 * bytes);
    }
    assert_eq!(emulator.totals(), expected, "{}", daemon.log());
}

#[test]
fn a_broken_file_on_sighup_keeps_the_running_configuration() {
    let emulator = Emulator::start();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let port = free_udp_port();
    let dir = temp_dir("reload-broken");
    let good = config_yaml(
        &emulator,
        &metrics,
        &[("routers", "{ type: netflow }", port)],
    );
    let mut daemon = Daemon::start_in(&dir, &good);
    let broken = good
        .replace("aggregation_seconds: 3600", "aggregation_seconds: 0")
        .replace(&format!("ports: \"{port}\""), "ports: \"not-a-port\"");
    std::fs::write(dir.join("flowlink.yaml"), broken).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_log(
        "SIGHUP: configuration not reloaded, the running one stays",
        1,
    );
    let log = daemon.log();
    assert!(
        log.contains("aggregation_seconds: must be between 1 and 3600"),
        "{log}"
    );
    assert!(
        log.contains("consumers[0].connector.properties.ports"),
        "{log}"
    );
    assert_eq!(
        counter(&metrics, "flowlink_config_reloads_total{result=\"failed\"}"),
        1
    );
    // Still running the old configuration.
    send_files(&datagram_files("softflowd_v5"), port);
    wait_metric(
        &daemon,
        &metrics,
        "flowlink_flows_parsed_total{consumer=\"routers\"}",
        343,
    );
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected_aggregation(&read_flows_csv("softflowd_v5"))
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A daemon in `temp_dir(name)` caught while its plugins compile: a fresh
/// plugin cache under `data/`, so every plugin compiles cold (about a
/// second, the start-up window a signal must arrive in) and a half-written
/// cache file would be seen there.
fn spawn_while_plugins_compile(emulator: &Emulator, name: &str) -> (std::path::PathBuf, Daemon) {
    let dir = temp_dir(name);
    let yaml = DaemonConfig::new(emulator, "routers", "netflow")
        .udp(free_udp_port())
        .plugin_cache_dir(&dir.join("data/plugin-cache"))
        .yaml();
    let daemon = Daemon::spawn_in(&dir, &yaml);
    daemon.wait_log("loading plugins", 1);
    (dir, daemon)
}

#[test]
fn sigterm_while_plugins_compile_ends_the_start_cleanly() {
    let emulator = Emulator::start();
    let (dir, mut daemon) = spawn_while_plugins_compile(&emulator, "reload-startup-term");
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM during start-up"), "{log}");
    assert!(!log.contains("flowlink running"), "{log}");
    let partial: Vec<_> = files_under(&dir.join("data"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(partial.is_empty(), "half-written files: {partial:?}");
    assert!(!dir.join("data/spool").exists(), "nothing opened: {log}");
}

/// A SIGHUP that arrives while plugins compile is not the default action
/// (exit 129): the daemon starts, then applies it.
#[test]
fn sighup_during_start_up_is_applied_once_running() {
    let emulator = Emulator::start();
    let (_dir, mut daemon) = spawn_while_plugins_compile(&emulator, "reload-startup-hup");
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("flowlink running", 1);
    daemon.wait_log(UNCHANGED, 1);
    assert!(daemon.is_running());
    assert!(daemon.terminate().success());
}

//! Past one machine: a relay daemon produces raw datagrams to Kafka (a real
//! tansu broker), keyed by exporter; outlet daemons in one group parse and
//! aggregate them. Expected totals are tshark's decoding of softflowd's
//! NetFlow v9 capture, once per exporter address.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use flowlink_e2e::peers::KafkaBroker;
use flowlink_e2e::process::{Totals, metric, wait_metric};
use flowlink_e2e::{
    CsvFlow, Daemon, DaemonConfig, Emulator, datagram_files, expected_aggregation, free_tcp_port,
    free_udp_port, read_flows_csv, wait_for,
};

/// softflowd sends its templates in datagrams 1 and 17 only.
const JOB: &str = "softflowd_v9";
const TOPIC: &str = "flows";
const PARTITIONS: u32 = 4;
const STATE_TOPIC: &str = "flows-state";
const GROUP: &str = "outlets";
/// Exporters 127.0.0.1 to 127.0.0.8.
const EXPORTERS: u8 = 8;

/// Sends datagrams `frames` (1-based) of the capture from every exporter
/// address, exporter after exporter.
fn send(files: &[PathBuf], frames: std::ops::RangeInclusive<usize>, port: u16) {
    for exporter in 1..=EXPORTERS {
        let socket = UdpSocket::bind((format!("127.0.0.{exporter}").as_str(), 0)).unwrap();
        for file in &files[frames.start() - 1..*frames.end()] {
            socket
                .send_to(&std::fs::read(file).unwrap(), ("127.0.0.1", port))
                .unwrap();
        }
    }
}

/// What the emulator holds once each exporter's datagrams `frames` are
/// aggregated, each sent `rounds` times: tshark's rows of them, once per
/// exporter and round.
fn expected(frames: &[(std::ops::RangeInclusive<u32>, usize)]) -> Totals {
    let rows = read_flows_csv(JOB);
    let mut sent: Vec<CsvFlow> = Vec::new();
    for (range, rounds) in frames {
        for _ in 0..usize::from(EXPORTERS) * rounds {
            sent.extend(rows.iter().filter(|f| range.contains(&f.frame)).cloned());
        }
    }
    expected_aggregation(&sent)
}

struct Cluster {
    broker: KafkaBroker,
    emulator: Emulator,
    files: Vec<PathBuf>,
}

impl Cluster {
    fn start() -> Cluster {
        let broker = KafkaBroker::start();
        broker.create_topic(TOPIC, PARTITIONS);
        broker.create_topic(STATE_TOPIC, 1);
        Cluster {
            broker,
            emulator: Emulator::start(),
            files: datagram_files(JOB),
        }
    }

    /// A relay daemon on a free UDP port; `extra` adds relay properties.
    fn relay(&self, name: &str, extra: &str) -> (Daemon, u16, String) {
        let port = free_udp_port();
        let metrics = format!("127.0.0.1:{}", free_tcp_port());
        let config = DaemonConfig::new(&self.emulator, "edge", "netflow")
            .udp(port)
            .metrics(&metrics)
            .relay(&format!(
                "{{ type: kafka, properties: {{ brokers: \"{}\", topic: {TOPIC}{extra} }} }}",
                self.broker.address()
            ))
            .yaml();
        (Daemon::start(name, &config), port, metrics)
    }

    /// An outlet: a Kafka consumer of the relay's topic in group `GROUP`,
    /// sharing parser state, committing offsets once windows are uploaded.
    fn outlet(&self, name: &str) -> (Daemon, String) {
        let metrics = format!("127.0.0.1:{}", free_tcp_port());
        let connector = format!(
            "{{ type: kafka, properties: {{ brokers: \"{}\", topics: [{TOPIC}], group_id: {GROUP}, \
             start_offset: earliest, state_topic: {STATE_TOPIC}, commit: upload, properties: {{ \
             topic.metadata.refresh.interval.ms: 1000, auto.commit.interval.ms: 500, \
             session.timeout.ms: 6000, heartbeat.interval.ms: 500 }} }} }}",
            self.broker.address()
        );
        let config = DaemonConfig::new(&self.emulator, "routers", "netflow")
            .connector(&connector)
            .metrics(&metrics)
            .with("state_snapshot_seconds: 1")
            .with("log_level: \"info,flowlink::connector::kafka_state=debug\"")
            .yaml();
        (Daemon::start(name, &config), metrics)
    }

    /// Two outlets, waiting until each holds partitions and they hold all.
    fn two_outlets(&self, test: &str) -> ((Daemon, String), (Daemon, String)) {
        let first = self.outlet(&format!("{test}-outlet-a"));
        let second = self.outlet(&format!("{test}-outlet-b"));
        // Each holds some and together all: with the plugins cached both
        // may join before the first assignment, so count holdings, not
        // rebalances.
        let split = wait_for(Duration::from_secs(60), || {
            let (a, b) = (
                first.0.kafka_partitions_held(),
                second.0.kafka_partitions_held(),
            );
            (a > 0 && b > 0 && a + b == PARTITIONS as usize).then_some(())
        });
        assert!(
            split.is_some(),
            "partitions not shared\nA:\n{}\nB:\n{}",
            first.0.log(),
            second.0.log()
        );
        (first, second)
    }

    /// Waits until the group committed all of the `messages` of the topic.
    fn wait_all_committed(&self, messages: u64) {
        let committed = || self.broker.committed(TOPIC, PARTITIONS as i32, GROUP);
        let done = wait_for(Duration::from_secs(60), || {
            (committed() == messages as i64).then_some(())
        });
        assert!(
            done.is_some(),
            "{} of {messages} offsets committed",
            committed()
        );
    }
}

const PARSED: &str = "flowlink_flows_parsed_total{consumer=\"routers\"}";
const REJECTED: &str = "flowlink_records_rejected_total{consumer=\"routers\"}";
const RELAYED: &str = "flowlink_messages_relayed_total{consumer=\"edge\"}";

#[test]
fn eight_exporters_through_a_relay_reach_the_pce_once_via_two_outlets() {
    let cluster = Cluster::start();
    let ((mut a, a_metrics), (mut b, b_metrics)) = cluster.two_outlets("scale-once");
    let (mut relay, port, relay_metrics) = cluster.relay("scale-once-relay", "");
    // Templates once (datagram 1), then data only.
    send(&cluster.files, 1..=16, port);
    wait_metric(&relay, &relay_metrics, RELAYED, 16 * u64::from(EXPORTERS));
    let want = expected(&[(1..=16, 1)]);
    flowlink_e2e::process::assert_totals(&cluster.emulator, &b, &want, "two outlets");
    let parsed = |m: &str| metric(m, PARSED);
    assert!(
        parsed(&a_metrics) > 0 && parsed(&b_metrics) > 0,
        "both outlets took a share: {} and {}",
        parsed(&a_metrics),
        parsed(&b_metrics)
    );
    assert_eq!(
        metric(&a_metrics, REJECTED) + metric(&b_metrics, REJECTED),
        0
    );
    assert!(relay.terminate().success());
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    // Nothing more arrived with the shutdown uploads.
    assert_eq!(cluster.emulator.totals(), want);
}

/// Outlet A is SIGKILLed; its partitions go to the members left, B and a
/// replacement C started with no disk state (an orchestrator's new pod),
/// which restore the templates A published before they decode.
///
/// Why C: tansu 0.6 keeps a dead member's partitions unassigned after its
/// session expires (B rejoins and gets its old assignment back) until a
/// member joins; a stock Kafka hands them to B on session expiry.
#[test]
fn a_killed_outlets_exporters_decode_elsewhere_without_a_template_refresh() {
    let cluster = Cluster::start();
    let ((mut a, a_metrics), (mut b, b_metrics)) = cluster.two_outlets("scale-kill");
    let (mut relay, port, relay_metrics) = cluster.relay("scale-kill-relay", "");
    send(&cluster.files, 1..=8, port);
    wait_metric(&relay, &relay_metrics, RELAYED, 8 * u64::from(EXPORTERS));
    flowlink_e2e::process::assert_totals(
        &cluster.emulator,
        &b,
        &expected(&[(1..=8, 1)]),
        "before the kill",
    );
    // Both outlets decoded their exporters' templates and published them:
    // the state topic's latest snapshots name every exporter (an IPv4
    // scope is written as 4, then the address).
    assert!(metric(&a_metrics, PARSED) > 0 && metric(&b_metrics, PARSED) > 0);
    let published = wait_for(Duration::from_secs(30), || {
        let mut latest = std::collections::HashMap::new();
        for (key, value) in cluster.broker.read_all(STATE_TOPIC) {
            latest.insert(key, value);
        }
        (1..=EXPORTERS)
            .all(|e| {
                latest
                    .values()
                    .any(|v| v.windows(5).any(|w| w == [4, 127, 0, 0, e]))
            })
            .then_some(())
    });
    assert!(published.is_some(), "A:\n{}\nB:\n{}", a.log(), b.log());
    // The offsets of what A uploaded are committed: its partitions resume
    // past the templates, wherever they go.
    cluster.wait_all_committed(8 * u64::from(EXPORTERS));
    a.kill();
    // C joins once A's session has expired and the group is B alone: if
    // C joined first, tansu's assignment would count A, and A's share
    // would stay unassigned after A's expiry (B alone rejoins, see above).
    cluster.broker.wait_stable(GROUP, 1);
    let (mut c, c_metrics) = cluster.outlet("scale-kill-outlet-c");
    // Every partition has an owner again: B's and C's assignments after
    // C's arrival cover the four.
    let covered = wait_for(Duration::from_secs(90), || {
        let (held_b, held_c) = (b.kafka_partitions_held(), c.kafka_partitions_held());
        (held_b > 0 && held_c > 0 && held_b + held_c == PARTITIONS as usize).then_some(())
    });
    assert!(covered.is_some(), "B:\n{}\nC:\n{}", b.log(), c.log());
    // ... and the broker has settled the group on B and C (A's session has
    // expired): a partition moving while its records sat in an open window
    // would be read twice (at-least-once, docs/scale-out.md); this test is
    // about templates, not that.
    cluster.broker.wait_stable(GROUP, 2);
    // The stream goes on, without templates (softflowd refreshes them only
    // at datagram 17).
    send(&cluster.files, 9..=16, port);
    wait_metric(&relay, &relay_metrics, RELAYED, 16 * u64::from(EXPORTERS));
    let want = expected(&[(1..=16, 1)]);
    flowlink_e2e::process::assert_totals(&cluster.emulator, &c, &want, "after the kill");
    assert_eq!(
        metric(&b_metrics, REJECTED) + metric(&c_metrics, REJECTED),
        0,
        "records without their template\nB:\n{}\nC:\n{}",
        b.log(),
        c.log()
    );
    assert!(metric(&c_metrics, PARSED) > 0, "C took a share");
    c.wait_log("parser state restored from the group's state topic", 1);
    assert!(relay.terminate().success());
    assert!(b.terminate().success());
    assert!(c.terminate().success());
    assert_eq!(cluster.emulator.totals(), want);
}

#[test]
fn a_relay_keeps_what_it_receives_while_the_broker_is_away() {
    let cluster = Cluster::start();
    let (mut outlet, outlet_metrics) = cluster.outlet("scale-outage-outlet");
    outlet.wait_log("kafka partitions assigned", 1);
    // A small memory bound and message timeout: most of the outage waits on
    // disk, some after librdkafka gave it back.
    let (mut relay, port, relay_metrics) = cluster.relay(
        "scale-outage-relay",
        ", memory_max_mb: 1, message.timeout.ms: 5000",
    );
    send(&cluster.files, 1..=16, port);
    flowlink_e2e::process::assert_totals(
        &cluster.emulator,
        &outlet,
        &expected(&[(1..=16, 1)]),
        "before the outage",
    );

    cluster.broker.go_away();
    // 20 s of traffic with the broker away: data datagrams only, 8 rounds.
    let rounds = 8;
    for _ in 0..rounds {
        send(&cluster.files, 2..=16, port);
        std::thread::sleep(Duration::from_millis(2500));
    }
    let buffered = metric(
        &relay_metrics,
        "flowlink_relay_disk_buffered_total{consumer=\"edge\"}",
    );
    cluster.broker.come_back();

    let want = expected(&[(1..=16, 1), (2..=16, rounds)]);
    flowlink_e2e::process::assert_totals(&cluster.emulator, &relay, &want, "after the outage");
    assert!(buffered > 0, "the disk buffer was used\n{}", relay.log());
    assert_eq!(
        metric(
            &relay_metrics,
            "flowlink_relay_drops_total{consumer=\"edge\"}"
        ),
        0
    );
    assert_eq!(metric(&outlet_metrics, REJECTED), 0);
    assert!(relay.terminate().success());
    assert!(outlet.terminate().success());
    assert_eq!(cluster.emulator.totals(), want);
}

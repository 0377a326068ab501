//! The `kafka` connector against a real broker (tansu): VPC and text
//! records produced to topics reach the PCE emulator; offsets are committed
//! only after parsing, so a daemon restart loses nothing and counts nothing
//! twice; the broker going away and coming back is survived.

use std::time::Duration;

use flowlink_e2e::peers::KafkaBroker;
use flowlink_e2e::records::{KV_PROPERTIES, expected_totals, kv_record, vpc_record};
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, assert_totals, free_tcp_port, scrape, temp_dir, wait_for,
};

fn connector(broker: &KafkaBroker, topic: &str) -> String {
    format!(
        "{{ type: kafka, properties: {{ brokers: \"{}\", topics: [{topic}], group_id: flowlink-test, start_offset: earliest, properties: {{ topic.metadata.refresh.interval.ms: 1000, auto.commit.interval.ms: 500 }} }} }}",
        broker.address()
    )
}

#[test]
fn vpc_records_at_least_once_across_a_restart() {
    let broker = KafkaBroker::start();
    broker.create_topic("vpc-flow-logs", 2);
    let emulator = Emulator::start();
    let mut sent = Vec::new();
    // One record per message, and messages of many lines, a bad one among them.
    let mut messages: Vec<(Option<&str>, String)> = Vec::new();
    for h in 1..=20u8 {
        let r = (1, h, u64::from(h), 50 * u64::from(h));
        sent.push(r);
        messages.push((None, vpc_record(r.0, r.1, r.2, r.3)));
    }
    let block: Vec<_> = (1..=30u8)
        .map(|h| (2, h, u64::from(h), 50 * u64::from(h)))
        .collect();
    sent.extend(&block);
    let mut lines: Vec<String> = block
        .iter()
        .map(|r| vpc_record(r.0, r.1, r.2, r.3))
        .collect();
    lines.insert(
        5,
        "2 123456789012 eni-1 10.2.0.1 172.16.0.10 40000 443 six 1 1 1 2 ACCEPT OK".to_owned(),
    );
    messages.push((None, lines.join("\n")));
    broker.produce("vpc-flow-logs", &messages);

    let dir = temp_dir("kafka-vpc");
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = DaemonConfig::new(&emulator, "kafka", "vpc-flow")
        .connector(&connector(&broker, "vpc-flow-logs"))
        .metrics(&metrics)
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    assert_totals(
        &emulator,
        &daemon,
        &expected_totals(&sent, "172.16.0.10", 443, 6),
        "first run",
    );
    assert_eq!(
        scrape(&metrics)["flowlink_records_rejected_total{consumer=\"kafka\"}"],
        1
    );
    assert!(daemon.terminate().success());
    assert!(
        daemon.log().contains("kafka offsets committed"),
        "{}",
        daemon.log()
    );

    // Produced while the daemon is down: read after the restart, and
    // nothing of the first run again.
    let later: Vec<_> = (1..=10u8)
        .map(|h| (3, h, u64::from(h), 50 * u64::from(h)))
        .collect();
    let later_messages: Vec<_> = later
        .iter()
        .map(|r| (None, vpc_record(r.0, r.1, r.2, r.3)))
        .collect();
    broker.produce("vpc-flow-logs", &later_messages);
    sent.extend(&later);
    let mut daemon = Daemon::start_in(&dir, &config);
    let expected = expected_totals(&sent, "172.16.0.10", 443, 6);
    assert_totals(&emulator, &daemon, &expected, "after restart");
    // The stop uploads everything read: still exactly once.
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected,
        "records counted twice\n{}",
        daemon.log()
    );
}

#[test]
fn text_records_survive_a_broker_outage() {
    let broker = KafkaBroker::start();
    broker.create_topic("firewall", 1);
    let emulator = Emulator::start();
    let config = DaemonConfig::new(&emulator, "fw", "text")
        .connector(&connector(&broker, "firewall"))
        .parser_with(KV_PROPERTIES)
        .yaml();
    let daemon = Daemon::start("kafka-text", &config);
    let first: Vec<_> = (1..=10u8)
        .map(|h| (1, h, u64::from(h), 80 * u64::from(h)))
        .collect();
    let messages: Vec<_> = first
        .iter()
        .map(|r| (None, kv_record(r.0, r.1, r.2, r.3)))
        .collect();
    broker.produce("firewall", &messages);
    let mut sent = first;
    assert_totals(
        &emulator,
        &daemon,
        &expected_totals(&sent, "172.16.0.53", 53, 17),
        "before the outage",
    );

    broker.go_away();
    let outage = wait_for(Duration::from_secs(15), || {
        daemon
            .log()
            .contains("All broker connections are down")
            .then_some(())
    });
    assert!(
        outage.is_some(),
        "the daemon did not notice the outage\n{}",
        daemon.log()
    );
    broker.come_back();
    let second: Vec<_> = (1..=10u8)
        .map(|h| (2, h, u64::from(h), 80 * u64::from(h)))
        .collect();
    let messages: Vec<_> = second
        .iter()
        .map(|r| (None, kv_record(r.0, r.1, r.2, r.3)))
        .collect();
    broker.produce("firewall", &messages);
    sent.extend(second);
    assert_totals(
        &emulator,
        &daemon,
        &expected_totals(&sent, "172.16.0.53", 53, 17),
        "after the broker came back",
    );
}

#[test]
fn two_daemons_in_one_group_share_the_partitions() {
    let broker = KafkaBroker::start();
    broker.create_topic("shared", 2);
    let emulator = Emulator::start();
    let config = DaemonConfig::new(&emulator, "group", "vpc-flow")
        .connector(&connector(&broker, "shared"))
        .yaml();
    let mut first = Daemon::start("kafka-group-a", &config);
    let second = Daemon::start("kafka-group-b", &config);
    // Each member ends with one partition (the second's arrival makes the
    // group rebalance, or both joined before the first assignment).
    let split = wait_for(Duration::from_secs(60), || {
        let (a, b) = (
            first.kafka_partitions_held(),
            second.kafka_partitions_held(),
        );
        (a == 1 && b == 1).then_some(())
    });
    assert!(
        split.is_some(),
        "partitions not shared\nA:\n{}\nB:\n{}",
        first.log(),
        second.log()
    );

    let produce = |net: u8, count: u8, sent: &mut Vec<(u8, u8, u64, u64)>| {
        let records: Vec<_> = (1..=count)
            .map(|h| (net, h, u64::from(h), 50 * u64::from(h)))
            .collect();
        let keys: Vec<String> = records.iter().map(|r| format!("eni-{}", r.1)).collect();
        let messages: Vec<_> = records
            .iter()
            .zip(&keys)
            .map(|(r, k)| (Some(k.as_str()), vpc_record(r.0, r.1, r.2, r.3)))
            .collect();
        broker.produce("shared", &messages);
        sent.extend(records);
    };
    let mut sent = Vec::new();
    produce(1, 40, &mut sent);
    let both = expected_totals(&sent, "172.16.0.10", 443, 6);
    assert_totals(&emulator, &second, &both, "two members");
    // Both members took a share.
    first.wait_log("window closed", 1);
    second.wait_log("window closed", 1);

    // One member leaves: the other takes over its partition.
    assert!(first.terminate().success());
    produce(2, 40, &mut sent);
    assert_totals(
        &emulator,
        &second,
        &expected_totals(&sent, "172.16.0.10", 443, 6),
        "after a member left",
    );
}

#[test]
fn a_topic_pattern_takes_every_matching_topic() {
    let broker = KafkaBroker::start();
    for topic in ["fw-site-a", "fw-site-b", "other"] {
        broker.create_topic(topic, 1);
    }
    let emulator = Emulator::start();
    let config = DaemonConfig::new(&emulator, "pattern", "text")
        .connector(&format!(
            "{{ type: kafka, properties: {{ brokers: \"{}\", topic_pattern: \"fw-.*\", start_offset: earliest, properties: {{ topic.metadata.refresh.interval.ms: 1000 }} }} }}",
            broker.address()
        ))
        .parser_with(KV_PROPERTIES)
        .yaml();
    let mut daemon = Daemon::start("kafka-pattern", &config);
    let mut sent = Vec::new();
    for (net, topic) in [(1u8, "fw-site-a"), (2, "fw-site-b"), (3, "other")] {
        let records: Vec<_> = (1..=5u8)
            .map(|h| (net, h, u64::from(h), 80 * u64::from(h)))
            .collect();
        let messages: Vec<_> = records
            .iter()
            .map(|r| (None, kv_record(r.0, r.1, r.2, r.3)))
            .collect();
        broker.produce(topic, &messages);
        if topic != "other" {
            sent.extend(records);
        }
    }
    let expected = expected_totals(&sent, "172.16.0.53", 53, 17);
    assert_totals(&emulator, &daemon, &expected, "pattern subscription");
    // The stop uploads everything read, "other" included had it been.
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected,
        "a topic outside the pattern was read"
    );
}

//! The `aws` connector against moto's CloudWatch Logs: VPC flow records in
//! several streams reach the PCE emulator; after a restart the connector
//! resumes from its checkpoint, so nothing arrives twice and nothing is
//! skipped; a missing log group stops the start with a clear error.

use std::time::Duration;

use flowlink_e2e::peers::{AWS_REGION, MotoServer};
use flowlink_e2e::records::{expected_totals, vpc_record};
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, assert_totals, free_tcp_port, run_flowlink, scrape, temp_dir,
    wait_for,
};

const GROUP: &str = "/flowlink/vpc-flow-logs";

fn connector(moto: &MotoServer, group: &str) -> String {
    format!(
        "{{ type: aws, properties: {{ region: {AWS_REGION}, log_group: \"{group}\", endpoint_url: \"{}\", poll_seconds: 1, start_position: beginning }} }}",
        moto.endpoint
    )
}

fn put(moto: &MotoServer, stream: &str, records: &[(u8, u8, u64, u64)]) {
    let messages: Vec<String> = records
        .iter()
        .map(|r| vpc_record(r.0, r.1, r.2, r.3))
        .collect();
    moto.put_events(GROUP, stream, &messages);
}

#[test]
fn vpc_records_from_streams_resume_after_restart() {
    let moto = MotoServer::start();
    let emulator = Emulator::start();
    let streams = ["eni-0a1b2c3d-all", "eni-0e0f0a0b-all", "eni-99999999-all"];
    for stream in streams {
        moto.create_stream(GROUP, stream);
    }
    let mut sent = Vec::new();
    for (i, stream) in streams.iter().enumerate() {
        let records: Vec<_> = (1..=8)
            .map(|h| (i as u8 + 1, h, u64::from(h), 40 * u64::from(h)))
            .collect();
        put(&moto, stream, &records);
        sent.extend(records);
    }
    // NODATA is skipped, a broken record is rejected; neither stops the rest.
    moto.put_events(
        GROUP,
        streams[0],
        &[
            "2 123456789012 eni-0a1b2c3d - - - - - - - 1795867200 1795867260 - NODATA".to_owned(),
            "2 123456789012 eni-0a1b2c3d 10.1.0.300 172.16.0.10 40000 443 6 1 1 1 2 ACCEPT OK"
                .to_owned(),
        ],
    );

    let dir = temp_dir("cloudwatch");
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&connector(&moto, GROUP))
        .metrics(&metrics)
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    let expected = expected_totals(&sent, "172.16.0.10", 443, 6);
    assert_totals(&emulator, &daemon, &expected, "cloudwatch_logs");
    let counters = scrape(&metrics);
    assert_eq!(
        counters["flowlink_records_rejected_total{consumer=\"cloudwatch\"}"],
        1
    );
    assert_eq!(
        counters["flowlink_records_skipped_total{consumer=\"cloudwatch\"}"], 1,
        "the NODATA record is counted as skipped"
    );
    daemon.wait_log(r#"srcaddr: "10.1.0.300" is not an IP address"#, 1);
    assert!(daemon.terminate().success());

    // While the daemon is down: more events in an old stream and a new one.
    let more: Vec<_> = (9..=12)
        .map(|h| (1, h, u64::from(h), 40 * u64::from(h)))
        .collect();
    put(&moto, streams[0], &more);
    sent.extend(&more);
    moto.create_stream(GROUP, "eni-77777777-all");
    let newer: Vec<_> = (1..=3)
        .map(|h| (7, h, u64::from(h), 40 * u64::from(h)))
        .collect();
    put(&moto, "eni-77777777-all", &newer);
    sent.extend(&newer);

    let mut daemon = Daemon::start_in(&dir, &config);
    let expected = expected_totals(&sent, "172.16.0.10", 443, 6);
    assert_totals(&emulator, &daemon, &expected, "cloudwatch_logs");
    // The stop uploads everything read: still exactly once.
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected,
        "records arrived twice\n{}",
        daemon.log()
    );
}

#[test]
fn a_missing_log_group_stops_the_start_with_its_name() {
    let moto = MotoServer::start();
    let emulator = Emulator::start();
    let dir = temp_dir("cloudwatch-missing");
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&connector(&moto, "/no/such/group"))
        .yaml();
    let path = dir.join("flowlink.yaml");
    std::fs::write(&path, config).unwrap();
    let output = run_flowlink(&["run", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("log group \"/no/such/group\" does not exist in region us-east-1")
            && stderr.contains("cloudwatch"),
        "{stderr}"
    );
}

#[test]
fn start_position_end_skips_what_was_there() {
    let moto = MotoServer::start();
    let emulator = Emulator::start();
    let stream = "eni-0a1b2c3d-all";
    moto.create_stream(GROUP, stream);
    // Before the first start: not read with start_position end.
    put(&moto, stream, &[(1, 1, 1, 40), (1, 2, 2, 80)]);
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&format!(
            "{{ type: aws, properties: {{ region: {AWS_REGION}, log_group: \"{GROUP}\", endpoint_url: \"{}\", poll_seconds: 1 }} }}",
            moto.endpoint
        ))
        .yaml();
    let daemon = Daemon::start("cloudwatch-end", &config);
    // The first poll places the stream's start at its end and saves it:
    // only then are new events new.
    let checkpoints = daemon.dir.join("data/checkpoints");
    let placed = wait_for(Duration::from_secs(20), || {
        let files = std::fs::read_dir(&checkpoints).ok()?;
        files
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("aws-"))
            .filter_map(|f| std::fs::read_to_string(f.path()).ok())
            .any(|text| text.contains(stream))
            .then_some(())
    });
    assert!(placed.is_some(), "no saved position:\n{}", daemon.log());
    let after: Vec<_> = (3..=6)
        .map(|h| (1, h, u64::from(h), 40 * u64::from(h)))
        .collect();
    put(&moto, stream, &after);
    let expected = expected_totals(&after, "172.16.0.10", 443, 6);
    assert_totals(&emulator, &daemon, &expected, "cloudwatch_logs");
}

#[test]
fn filter_pattern_selects_events_and_resumes_after_restart() {
    let moto = MotoServer::start();
    let emulator = Emulator::start();
    let stream = "eni-0a1b2c3d-all";
    moto.create_stream(GROUP, stream);
    let rejected = |net: u8, host: u8| {
        format!(
            "2 123456789012 eni-0a1b2c3d 10.{net}.0.{host} 172.16.0.10 40000 443 6 1 60 1795867200 1795867260 REJECT OK"
        )
    };
    let mut messages = vec![rejected(1, 1), vpc_record(9, 1, 5, 500), rejected(1, 2)];
    moto.put_events(GROUP, stream, &messages);
    let dir = temp_dir("cloudwatch-filter");
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&format!(
            "{{ type: aws, properties: {{ region: {AWS_REGION}, log_group: \"{GROUP}\", endpoint_url: \"{}\", poll_seconds: 1, start_position: beginning, filter_pattern: REJECT }} }}",
            moto.endpoint
        ))
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    let mut sent = vec![(1, 1, 1, 60), (1, 2, 1, 60)];
    let wait = |daemon: &Daemon, sent: &[(u8, u8, u64, u64)]| {
        let expected = expected_totals(sent, "172.16.0.10", 443, 6);
        assert_totals(&emulator, daemon, &expected, "filtered events");
    };
    wait(&daemon, &sent);
    assert!(daemon.terminate().success());
    messages = vec![vpc_record(9, 2, 5, 500), rejected(1, 3)];
    moto.put_events(GROUP, stream, &messages);
    sent.push((1, 3, 1, 60));
    let mut daemon = Daemon::start_in(&dir, &config);
    wait(&daemon, &sent);
    assert!(daemon.terminate().success());
    assert_eq!(
        emulator.totals(),
        expected_totals(&sent, "172.16.0.10", 443, 6),
        "an event arrived twice\n{}",
        daemon.log()
    );
}

#[test]
fn an_unreachable_endpoint_does_not_stop_the_start() {
    let emulator = Emulator::start();
    let closed = free_tcp_port();
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&format!(
            "{{ type: aws, properties: {{ region: {AWS_REGION}, log_group: \"{GROUP}\", endpoint_url: \"http://127.0.0.1:{closed}\", poll_seconds: 1 }} }}"
        ))
        .yaml();
    // Daemon::start waits for "flowlink running".
    let mut daemon = Daemon::start("cloudwatch-unreachable", &config);
    daemon.wait_log("cannot list streams yet", 1);
    assert!(daemon.terminate().success());
}

/// moto (as AWS) pages FilterLogEvents at 10,000 events: a backlog larger
/// than a page reaches the parsers one page per message, never whole.
#[test]
fn filter_mode_hands_a_backlog_on_page_by_page() {
    let moto = MotoServer::start();
    let emulator = Emulator::start();
    let stream = "eni-0a1b2c3d-all";
    moto.create_stream(GROUP, stream);
    let sent: Vec<(u8, u8, u64, u64)> = (1..=48u8)
        .flat_map(|net| (1..=250u8).map(move |host| (net, host, 1, 60)))
        .collect();
    let events: Vec<String> = sent
        .iter()
        .map(|&(net, host, _, _)| {
            format!(
                "2 123456789012 eni-0a1b2c3d 10.{net}.0.{host} 172.16.0.10 40000 443 6 1 60 1795867200 1795867260 REJECT OK"
            )
        })
        .collect();
    // PutLogEvents takes at most 10,000 events (and 1 MB) per call.
    for chunk in events.chunks(4000) {
        moto.put_events(GROUP, stream, chunk);
    }
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let config = DaemonConfig::new(&emulator, "cloudwatch", "vpc-flow")
        .connector(&format!(
            "{{ type: aws, properties: {{ region: {AWS_REGION}, log_group: \"{GROUP}\", endpoint_url: \"{}\", poll_seconds: 1, start_position: beginning, filter_pattern: REJECT }} }}",
            moto.endpoint
        ))
        .metrics(&metrics)
        .yaml();
    let daemon = Daemon::start("cloudwatch-pages", &config);
    let expected = expected_totals(&sent, "172.16.0.10", 443, 6);
    assert_totals(
        &emulator,
        &daemon,
        &expected,
        "a filtered backlog of 12,000 events",
    );
    let messages = scrape(&metrics)["flowlink_messages_in_total{consumer=\"cloudwatch\"}"];
    assert!(
        messages >= 2,
        "12,000 events in {messages} message(s): the pages were collected before parsing"
    );
}

//! A crash campaign, bounded in time: a file tail with a known set of
//! records, appended to while the daemon is SIGKILLed ten times at moments
//! from a fixed pseudo-random sequence and restarted. Nothing may be lost.
//! A record may be counted twice only in the narrow case docs/connectors.md
//! describes: a kill between a window checkpoint and the source's resume
//! point (file position, Kafka commit) that follows it. After each kill
//! the campaign reads both from outside (the window file's header, the
//! saved position or the group's committed offsets): every duplicate must
//! be one of the records such a kill left checkpointed but not done with.
//!
//! The same against a Kafka topic (tansu): a SIGKILLed member leaves the
//! group only when its session times out, so the campaign's consumers use
//! a short session timeout.

use std::time::Duration;

use flowlink_e2e::peers::KafkaBroker;
use flowlink_e2e::process::Totals;
use flowlink_e2e::records::vpc_record;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, file_resume_point, temp_dir, wait_file_resume_point, wait_for,
    window_checkpoints,
};

const KILLS: usize = 10;

/// Record `n` (1-based): net n/250, host n%250+1, `n % 7 + 1` packets.
fn record(n: u32) -> (u8, u8, u64, u64) {
    let packets = u64::from(n % 7 + 1);
    (
        (n / 250) as u8 + 10,
        (n % 250 + 1) as u8,
        packets,
        60 * packets,
    )
}

fn expected(count: u32) -> Totals {
    let mut totals = Totals::new();
    for n in 1..=count {
        let (net, host, packets, bytes) = record(n);
        totals.insert(
            (format!("10.{net}.0.{host}"), "172.16.0.10".into(), 443, 6),
            (1, packets, bytes),
        );
    }
    totals
}

/// Every key there with whole multiples of its record; the number of keys
/// counted twice.
fn check(got: &Totals, want: &Totals, what: &str) -> u64 {
    let mut duplicates = 0;
    for (key, (c, p, b)) in want {
        let Some(&(gc, gp, gb)) = got.get(key) else {
            panic!("{what}: {key:?} lost");
        };
        assert!(
            gc >= *c && (gp, gb) == (gc * p, gc * b),
            "{what}: {key:?} {:?}",
            got[key]
        );
        duplicates += gc - c;
    }
    assert_eq!(got.len(), want.len(), "{what}: keys nobody sent");
    duplicates
}

/// Ten runs, each SIGKILLed a pseudo-random moment after `started` says
/// it is under way; `done_with` reads how many records the source's
/// resume point has passed. Returns how many records the kills left both
/// in a window checkpoint and ahead of the resume point: the next start
/// uploads the checkpoint and reads them again, so at most these may be
/// counted twice.
fn campaign(
    what: &str,
    config: &str,
    dir: &std::path::Path,
    mut started: impl FnMut(usize, &Daemon),
    mut done_with: impl FnMut() -> u64,
) -> u64 {
    let data = dir.join("data");
    // Fixed kill moments, 200–1499 ms apart: the same on every run.
    let mut moments = flowlink_e2e::lcg::Lcg(20261201);
    let mut read_again = 0;
    let mut advanced = false;
    for cycle in 0..KILLS {
        let earlier = window_checkpoints(&data);
        let resumed_at = done_with();
        let mut daemon = Daemon::start_in(dir, config);
        started(cycle, &daemon);
        std::thread::sleep(Duration::from_millis(
            200 + u64::from(moments.next_u32()) % 1300,
        ));
        daemon.kill();
        // The run's own window (an earlier run's may still wait for its
        // upload): one key per record, every record's key is its own.
        let checkpointed: u64 = window_checkpoints(&data)
            .into_iter()
            .filter(|(name, _)| !earlier.contains_key(name))
            .map(|(_, flows)| u64::from(flows))
            .sum();
        let done = done_with();
        advanced |= done > resumed_at;
        let again = (resumed_at + checkpointed).saturating_sub(done);
        read_again += again;
        eprintln!(
            "{what}: killed in cycle {cycle}: {checkpointed} records checkpointed, resume point {resumed_at} -> {done}, {again} to be read again"
        );
    }
    // A source that never moves while running would pass the bound with
    // everything counted twice.
    assert!(advanced, "{what}: no run moved the resume point");
    read_again
}

#[test]
fn file_tail_survives_ten_sigkills() {
    let emulator = Emulator::start();
    let dir = temp_dir("crash-file");
    let input = dir.join("flows.log");
    let lines = |range: std::ops::RangeInclusive<u32>| -> String {
        range
            .map(|n| {
                let (net, host, p, b) = record(n);
                vpc_record(net, host, p, b) + "\n"
            })
            .collect()
    };
    std::fs::write(&input, lines(1..=500)).unwrap();
    let config = DaemonConfig::new(&emulator, "files", "vpc-flow")
        .file_tail(&input)
        .window_seconds(3600)
        .with("checkpoint_seconds: 1")
        .yaml();
    let mut written = 500;
    let data = dir.join("data");
    // Lines before the saved position.
    let done_with = || {
        let text = std::fs::read(&input).unwrap();
        let at = file_resume_point(&data) as usize;
        text[..at].iter().filter(|&&b| b == b'\n').count() as u64
    };
    let read_again = campaign(
        "file",
        &config,
        &dir,
        |_, _| {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&input)
                .unwrap();
            std::io::Write::write_all(&mut file, lines(written + 1..=written + 150).as_bytes())
                .unwrap();
            written += 150;
        },
        done_with,
    );
    let mut daemon = Daemon::start_in(&dir, &config);
    let len = std::fs::metadata(&input).unwrap().len();
    wait_file_resume_point(&daemon, &dir.join("data"), len);
    assert!(daemon.terminate().success());
    let want = expected(written);
    let settled = wait_for(Duration::from_secs(30), || {
        let got = emulator.totals();
        (got.len() == want.len()).then_some(got)
    });
    let got = settled.unwrap_or_else(|| emulator.totals());
    let duplicates = check(&got, &want, "file");
    eprintln!("file: {written} records, {duplicates} counted twice, {read_again} could be");
    // The file tail saves its position right after the window checkpoint
    // the records are in: a kill between the two is the only way to count a
    // record twice, and it is a matter of milliseconds.
    assert!(
        duplicates <= read_again,
        "{duplicates} duplicates, but the kills left {read_again} records to read again"
    );
}

#[test]
fn kafka_topic_survives_ten_sigkills() {
    let broker = KafkaBroker::start();
    broker.create_topic("crash-flows", 2);
    let emulator = Emulator::start();
    let dir = temp_dir("crash-kafka");
    let produce = |range: std::ops::RangeInclusive<u32>| {
        let messages: Vec<(Option<&str>, String)> = range
            .map(|n| {
                let (net, host, p, b) = record(n);
                (None, vpc_record(net, host, p, b))
            })
            .collect();
        broker.produce("crash-flows", &messages);
    };
    produce(1..=500);
    let config = |window: u64| {
        DaemonConfig::new(&emulator, "kafka", "vpc-flow")
            .connector(&format!(
                "{{ type: kafka, properties: {{ brokers: \"{}\", topics: [crash-flows], group_id: crash, start_offset: earliest, properties: {{ topic.metadata.refresh.interval.ms: 1000, auto.commit.interval.ms: 200, session.timeout.ms: 6000, heartbeat.interval.ms: 500 }} }} }}",
                broker.address()
            ))
            .window_seconds(window)
            .with("checkpoint_seconds: 1")
            .yaml()
    };
    let mut written = 500;
    let read_again = campaign(
        "kafka",
        &config(3600),
        &dir,
        |_, daemon| {
            produce(written + 1..=written + 150);
            written += 150;
            // Killed while reading: once the group gave it the partitions
            // (after the killed member's session timed out).
            let assigned = wait_for(Duration::from_secs(60), || {
                daemon
                    .log()
                    .contains("kafka partitions assigned")
                    .then_some(())
            });
            assert!(assigned.is_some(), "no partitions:\n{}", daemon.log());
        },
        || broker.committed("crash-flows", 2, "crash") as u64,
    );
    // The last run uploads every second: done once every key is there.
    let mut daemon = Daemon::start_in(&dir, &config(1));
    let want = expected(written);
    // Keys the killed runs had taken and checkpointed, each uploaded by the
    // start after the kill: the campaign killed runs that held records.
    let before = emulator.totals().len();
    assert!(before > 0, "no run was killed while holding records");
    let complete = wait_for(Duration::from_secs(120), || {
        (emulator.totals().len() == want.len()).then_some(())
    });
    assert!(daemon.terminate().success());
    assert!(
        complete.is_some(),
        "{} of {} keys after the campaign\n{}",
        emulator.totals().len(),
        want.len(),
        daemon.log()
    );
    let settled = wait_for(Duration::from_secs(30), || {
        let got = emulator.totals();
        (got.len() == want.len()).then_some(got)
    });
    let got = settled.unwrap_or_else(|| emulator.totals());
    let duplicates = check(&got, &want, "kafka");
    eprintln!(
        "kafka: {written} records, {duplicates} counted twice, {read_again} could be, {before} keys recovered from killed runs' windows"
    );
    // The consumer commits right after each window checkpoint: a kill
    // between the two is the only way to count a record twice.
    assert!(
        duplicates <= read_again,
        "{duplicates} duplicates, but the kills left {read_again} records to read again"
    );
    assert_eq!(
        broker.committed("crash-flows", 2, "crash"),
        i64::from(written),
        "the last run's commit at exit"
    );
}

//! The `file` connector tailing a VPC flow log file through rotation
//! (rename, late writes to the old file, a new file) and truncation, and
//! resuming from its checkpoint after a restart: every record arrives
//! exactly once.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use flowlink_e2e::records::{expected_totals, vpc_record};
use flowlink_e2e::{Daemon, DaemonConfig, Emulator, assert_totals, temp_dir};

fn append(path: &Path, records: &[(u8, u8, u64, u64)]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for (net, host, packets, bytes) in records {
        writeln!(file, "{}", vpc_record(*net, *host, *packets, *bytes)).unwrap();
    }
    file.sync_all().unwrap();
}

fn records(net: u8, hosts: std::ops::RangeInclusive<u8>) -> Vec<(u8, u8, u64, u64)> {
    hosts
        .map(|h| (net, h, u64::from(h), 60 * u64::from(h)))
        .collect()
}

fn wait_exact(emulator: &Emulator, daemon: &Daemon, sent: &[(u8, u8, u64, u64)]) {
    let expected = expected_totals(sent, "172.16.0.10", 443, 6);
    assert_totals(emulator, daemon, &expected, "file tail");
}

#[test]
fn tails_through_rotation_truncation_and_restart() {
    let emulator = Emulator::start();
    let dir = temp_dir("file-tail");
    let log = dir.join("vpc.log");
    let config = DaemonConfig::new(&emulator, "file", "vpc-flow")
        .connector("{ type: file, properties: { path: vpc.log, start_position: beginning } }")
        .yaml();
    let mut sent = Vec::new();

    // Lines written before the start are read (start_position: beginning).
    let first = records(1, 1..=10);
    append(&log, &first);
    sent.extend(&first);
    let mut daemon = Daemon::start_in(&dir, &config);
    wait_exact(&emulator, &daemon, &sent);

    // Rotation: rename, a late write to the old file, then at once a new
    // file: the tail reads the old one to its end before it moves on.
    std::fs::rename(&log, dir.join("vpc.log.1")).unwrap();
    let late = records(2, 1..=3);
    append(&dir.join("vpc.log.1"), &late);
    sent.extend(&late);
    let fresh = records(3, 1..=5);
    append(&log, &fresh);
    sent.extend(&fresh);
    wait_exact(&emulator, &daemon, &sent);

    // Truncation (copytruncate), noticed, then new lines from offset 0
    // (a file that grows past the old offset before the tail looks cannot
    // be told from one that only grew: every tailer has that limit).
    std::fs::File::create(&log).unwrap();
    daemon.wait_log("file truncated; reading from its start", 1);
    let after_truncate = records(4, 1..=4);
    append(&log, &after_truncate);
    sent.extend(&after_truncate);
    wait_exact(&emulator, &daemon, &sent);

    // A restart resumes at the checkpoint: lines written while down come
    // once, nothing before them comes again.
    assert!(daemon.terminate().success());
    let while_down = records(5, 1..=6);
    append(&log, &while_down);
    sent.extend(&while_down);
    let mut daemon = Daemon::start_in(&dir, &config);
    wait_exact(&emulator, &daemon, &sent);
    // The stop uploads everything read: still exactly once.
    assert!(daemon.terminate().success());
    wait_exact(&emulator, &daemon, &sent);
}

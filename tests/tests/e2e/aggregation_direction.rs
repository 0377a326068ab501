//! The aggregator's direction rule against the input's own ground truth:
//! softflowd's v9 export of all 300 conversations (both directions of
//! each), through the daemon, must arrive at the PCE as one key per
//! conversation — client → server:port — carrying both directions'
//! packets and bytes.

use std::time::Duration;

use flowlink_e2e::process::Totals;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, aggregate_unfolded, expected_aggregation, expected_flows,
    free_udp_port, ground_truth_conversations, read_flows_csv, send_capture, wait_for,
};

fn run(direction: Option<&str>) -> (Totals, Daemon, Emulator) {
    run_job("softflowd_v9", 569, direction)
}

fn run_job(job: &str, records: u64, direction: Option<&str>) -> (Totals, Daemon, Emulator) {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut config = DaemonConfig::new(&emulator, "truth", "netflow").udp(port);
    if let Some(rule) = direction {
        config = config.with(&format!("direction_inference: {rule}"));
    }
    let daemon = Daemon::start("direction", &config.yaml());
    send_capture(job, port);
    // All records in: the window holds them all once the count settles.
    let settled = wait_for(Duration::from_secs(30), || {
        let totals = emulator.totals();
        (totals.values().map(|t| t.0).sum::<u64>() == records).then_some(totals)
    });
    let totals = settled.unwrap_or_else(|| {
        panic!(
            "not all records arrived: {:?}\n{}",
            emulator.totals(),
            daemon.log()
        )
    });
    (totals, daemon, emulator)
}

#[test]
fn replies_fold_into_the_conversations_of_the_ground_truth() {
    let (totals, mut daemon, _emulator) = run(None);
    let truth = ground_truth_conversations();
    assert_eq!(truth.len(), 300);
    let keys: Vec<_> = totals.keys().cloned().collect();
    let truth_keys: Vec<_> = truth.keys().cloned().collect();
    let missing: Vec<_> = truth_keys
        .iter()
        .filter(|k| !totals.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = keys
        .iter()
        .filter(|k| !truth.contains_key(*k))
        .take(5)
        .collect();
    assert_eq!(
        keys, truth_keys,
        "one key per conversation; missing {missing:?}, extra {extra:?}"
    );
    for (key, (packets, bytes)) in &truth {
        let got = totals[key];
        assert_eq!(
            (got.1, got.2),
            (*packets, *bytes),
            "{key:?}: packets and bytes of both directions"
        );
    }
    // And the same numbers the test's own model of the rule predicts.
    assert_eq!(
        totals,
        expected_aggregation(&read_flows_csv("softflowd_v9"))
    );
    assert!(daemon.terminate().success());
}

/// fprobe's NetFlow v5 carries ICMP type and code as source port = type,
/// destination port = code (softflowd and pmacct use dport = type·256 +
/// code). Decoded right, every echo reply folds into its request's key, so
/// the IPv4 conversations of the ground truth arrive as one key each.
#[test]
fn fprobe_v5_echo_replies_fold_into_their_requests() {
    let (totals, mut daemon, _emulator) = run_job("fprobe_v5", 343, None);
    let truth: std::collections::BTreeMap<_, _> = ground_truth_conversations()
        .into_iter()
        .filter(|(key, _)| !key.0.contains(':'))
        .collect();
    assert_eq!(truth.len(), 180, "IPv4 conversations");
    let icmp = truth.keys().filter(|k| k.3 == 1).count();
    assert!(icmp > 20, "the capture has ICMP echo exchanges: {icmp}");
    let extra: Vec<_> = totals.keys().filter(|k| !truth.contains_key(*k)).collect();
    assert!(extra.is_empty(), "keys not in the ground truth: {extra:?}");
    for (key, (packets, bytes)) in &truth {
        let got = totals.get(key).unwrap_or_else(|| panic!("{key:?} missing"));
        assert_eq!((got.1, got.2), (*packets, *bytes), "{key:?}");
    }
    assert!(daemon.terminate().success());
}

#[test]
fn direction_off_keys_every_record_as_reported() {
    let (totals, mut daemon, _emulator) = run(Some("off"));
    assert_eq!(
        totals,
        aggregate_unfolded(&expected_flows(&read_flows_csv("softflowd_v9")))
    );
    assert!(
        totals.len() > 500,
        "replies are separate keys: {}",
        totals.len()
    );
    assert!(daemon.terminate().success());
}

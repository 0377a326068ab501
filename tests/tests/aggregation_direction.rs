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
    let emulator = Emulator::start();
    let port = free_udp_port();
    let mut config = DaemonConfig::new(&emulator, "truth", "netflow").udp(port);
    if let Some(rule) = direction {
        config = config.with(&format!("direction_inference: {rule}"));
    }
    let daemon = Daemon::start("direction", &config.yaml());
    send_capture("softflowd_v9", port);
    // All 569 records in: the window holds them all once the count settles.
    let settled = wait_for(Duration::from_secs(30), || {
        let totals = emulator.totals();
        (totals.values().map(|t| t.0).sum::<u64>() == 569).then_some(totals)
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

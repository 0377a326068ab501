//! Malformed datagrams mixed with good ones, in bursts sent as fast as one
//! socket can: every good record reaches the PCE exactly, every bad
//! datagram is counted (refused whole, or its records rejected), nothing
//! is dropped, and resident memory stays bounded.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use flowlink_e2e::lcg::Lcg;
use flowlink_e2e::process::rss_kib;
use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, distinct_key_datagrams, free_tcp_port, free_udp_port, scrape,
    wait_for,
};

const GOOD: u32 = 3000;
const BURST: usize = 3000;

fn counter(metrics: &str, name: &str) -> u64 {
    flowlink_e2e::process::metric(
        metrics,
        &format!("flowlink_{name}_total{{consumer=\"flood\"}}"),
    )
}

/// Bad datagrams of three kinds, in turn: random bytes whose version field
/// is no NetFlow version, a v5 header claiming 30 records with the body cut
/// short, and a bare 4-byte stub.
fn malformed(n: u32, rng: &mut Lcg) -> Vec<u8> {
    match n % 3 {
        0 => {
            let len = 24 + (rng.next_u32() % 1400) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            d[0] = 0x7f; // version 0x7fxx: none of 5, 7, 9, 10
            d
        }
        1 => {
            let mut d = distinct_key_datagrams(1).remove(0);
            d.truncate(24 + 48 * 3 + 7);
            d
        }
        _ => vec![0, 5, 0, 30],
    }
}

#[test]
fn a_flood_of_bad_datagrams_costs_no_good_record() {
    let _alone = super::alone();
    let emulator = Emulator::start();
    let port = free_udp_port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let daemon = Daemon::start(
        "flood",
        &DaemonConfig::new(&emulator, "flood", "netflow")
            .udp(port)
            .metrics(&metrics)
            .yaml(),
    );
    let baseline = rss_kib(daemon.pid());

    let good = distinct_key_datagrams(GOOD);
    let mut rng = Lcg(7);
    let mut stream = Vec::new();
    let mut bad = 0u32;
    for datagram in &good {
        stream.push(datagram.clone());
        for _ in 0..2 {
            stream.push(malformed(bad, &mut rng));
            bad += 1;
        }
    }

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut peak = baseline;
    let mut sent = 0u64;
    for burst in stream.chunks(BURST) {
        for datagram in burst {
            socket.send_to(datagram, ("127.0.0.1", port)).unwrap();
        }
        sent += burst.len() as u64;
        // The next burst once this one is taken in (or dropped, which fails
        // the test below).
        let taken = wait_for(Duration::from_secs(60), || {
            peak = peak.max(rss_kib(daemon.pid()));
            let seen = counter(&metrics, "messages_in") + counter(&metrics, "kernel_drops");
            (seen >= sent).then_some(())
        });
        assert!(taken.is_some(), "{:?}\n{}", scrape(&metrics), daemon.log());
    }
    assert_eq!(counter(&metrics, "kernel_drops"), 0);
    assert_eq!(counter(&metrics, "queue_drops"), 0);

    // A last good datagram from the same exporter: its worker takes the
    // exporter's datagrams in order, so once its record is at the PCE every
    // datagram before it has been parsed or refused, and counted.
    let mut sentinel = flowlink_e2e::traffic::v5_records(1);
    sentinel[0].src = [10, 255, 255, 1];
    socket
        .send_to(
            &flowlink_e2e::traffic::v5_datagram(&sentinel),
            ("127.0.0.1", port),
        )
        .unwrap();
    let sentinel_key = ("10.255.255.1".to_owned(), "192.168.0.1".to_owned(), 443, 6);
    let done = wait_for(Duration::from_secs(60), || {
        emulator.totals().contains_key(&sentinel_key).then_some(())
    });
    assert!(done.is_some(), "{:?}\n{}", scrape(&metrics), daemon.log());

    // Every bad datagram is accounted for by its reason: the random ones
    // and the stubs refused whole, each cut-short one giving its 3 whole
    // records and rejecting the 27 its header promised beyond them.
    let (random_and_stubs, truncated) = (u64::from(bad) * 2 / 3, u64::from(bad) / 3);
    assert_eq!(counter(&metrics, "messages_failed"), random_and_stubs);
    assert_eq!(counter(&metrics, "records_rejected"), truncated * 27);
    let parsed = counter(&metrics, "flows_parsed");
    assert_eq!(parsed, u64::from(GOOD) * 30 + truncated * 3 + 1);

    // What the PCE holds is exactly the good datagrams' records, the
    // sentinel, and the cut-short datagrams' whole records (the keys of
    // the first good datagram's first three, counted once more each).
    let mut expected: flowlink_e2e::process::Totals = BTreeMap::new();
    for d in 0..GOOD {
        for r in 0..30u32 {
            let src = std::net::Ipv4Addr::from(0x0a00_0000 + d * 256 + r).to_string();
            expected.insert(
                (src, "192.168.0.1".into(), 443, 6),
                (1, 10 + u64::from(r), 1000 + u64::from(r)),
            );
        }
    }
    expected.insert(sentinel_key, (1, 10, 1000));
    let repeated = truncated * 3;
    let arrived = wait_for(Duration::from_secs(60), || {
        let totals = emulator.totals();
        let flows: u64 = totals.values().map(|t| t.0).sum();
        (flows == parsed).then_some(totals)
    });
    let totals = arrived.unwrap_or_else(|| panic!("{}", daemon.log()));
    assert_eq!(totals.len(), expected.len());
    let mut extra = 0;
    for (key, want) in &expected {
        let got = totals.get(key).unwrap_or_else(|| panic!("{key:?} missing"));
        if got != want {
            // Only the first good datagram's first records can repeat.
            let n = got.0 - want.0;
            assert_eq!(
                *got,
                (want.0 + n, want.1 * (1 + n), want.2 * (1 + n)),
                "{key:?}"
            );
            extra += n;
        }
    }
    assert_eq!(extra, repeated);

    let grown_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        grown_mib <= 64,
        "RSS grew by {grown_mib} MiB under the flood"
    );
}

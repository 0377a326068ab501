//! pmacct's sFlow v5 exports (sampling rate 1 and 10) through the real
//! `sflow` component against tshark: one flow per flow sample, bytes from
//! the IP header, the rate in `sampling_interval`.

use flowlink_e2e::{datagram_files, decode_json, json_tuple, read_flows_csv};

fn check(job: &str, samples: usize, rate: u64) {
    let (flows, stderr) = decode_json("sflow", &datagram_files(job));
    assert!(
        stderr.contains(", 0 records rejected, 0 messages failed"),
        "{job}: {stderr}"
    );
    let csv = read_flows_csv(job);
    assert_eq!(flows.len(), samples, "{job}: one flow per sample");
    assert_eq!(flows.len(), csv.len(), "{job}: tshark's sample count");
    for (i, (f, want)) in flows.iter().zip(&csv).enumerate() {
        assert_eq!(json_tuple(f), want.tuple(), "{job}: sample {i}");
        assert_eq!(
            f["sampling_interval"].as_u64().unwrap(),
            rate,
            "{job}: sample {i}"
        );
        assert_eq!(u64::from(want.sampling_rate), rate);
    }
}

#[test]
fn pmacct_sfprobe_at_rate_1() {
    check("pmacct_sfprobe_rate1", 4634, 1);
}

#[test]
fn pmacct_sfprobe_at_rate_10() {
    check("pmacct_sfprobe_rate10", 451, 10);
}

//! `flowlink-bench aggregator`: folding records into a window with many
//! distinct keys, and what the window costs in memory.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::Result;
use flowlink_flow::{Flow, IpAddr as WitIp, PackedFlows};

use super::resident_bytes;
use flowlink::aggregator::{DirectionInference, Window};
use flowlink::config::DirectionRule;

#[derive(clap::Args)]
pub struct AggregatorArgs {
    /// Distinct traffic keys in the window.
    #[arg(long, default_value_t = 100_000)]
    keys: u32,
    /// Passes over the records after the first (updates of existing keys).
    #[arg(long, default_value_t = 5)]
    passes: u32,
}

/// Records of one generated NetFlow v9 datagram (`flowlink replay --generate`).
const RECORDS_PER_DATAGRAM: usize = 30;

/// Record `i`: a distinct client per key, TCP to one of 16 services.
fn record(i: u32) -> Flow {
    Flow {
        src: WitIp::V4(0x0a00_0000 + i),
        dst: WitIp::V4(0xc0a8_0000 + (i % 16)),
        src_port: 40_000 + (i % 20_000) as u16,
        dst_port: 443,
        protocol: 6,
        packets: 10,
        bytes: 1500,
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_001_000,
        tcp_flags: 0x1b,
        ..Flow::default()
    }
}

pub fn run(args: AggregatorArgs) -> Result<()> {
    // Packed, as the parser workers hand records over.
    let packed: PackedFlows = (0..args.keys).map(record).collect();
    let records = packed.records();
    let direction = DirectionInference::new(DirectionRule::Auto, &[]);
    let exporter = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rss_before = resident_bytes();
    let mut window = Window::new(0);

    // Fed as the daemon feeds it: a run of one exporter's records at a
    // time, here one NetFlow v9 datagram's worth.
    let started = Instant::now();
    for run in records.chunks(RECORDS_PER_DATAGRAM) {
        window.add_all(run, exporter, &direction);
    }
    let insert = started.elapsed();
    let rss_after = resident_bytes();

    let started = Instant::now();
    for _ in 0..args.passes {
        for run in records.chunks(RECORDS_PER_DATAGRAM) {
            window.add_all(run, exporter, &direction);
        }
    }
    let update = started.elapsed();
    assert_eq!(window.len(), args.keys as usize);

    let started = Instant::now();
    let batch = window.into_batch("bench", 0);
    let close = started.elapsed();

    let n = f64::from(args.keys);
    println!("flowlink-bench aggregator: {} distinct keys", args.keys);
    println!(
        "insert (new keys)     : {:>12.0} flows/s ({:.1} ns/flow)",
        n / insert.as_secs_f64(),
        insert.as_nanos() as f64 / n
    );
    let updates = n * f64::from(args.passes);
    println!(
        "update (existing keys): {:>12.0} flows/s ({:.1} ns/flow)",
        updates / update.as_secs_f64(),
        update.as_nanos() as f64 / updates
    );
    println!(
        "close window to batch : {:>12.1} ms for {} flows",
        close.as_secs_f64() * 1e3,
        batch.flows.len()
    );
    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "resident memory grown : {:>12.1} MiB ({:.0} bytes/key)",
        grown as f64 / (1 << 20) as f64,
        grown as f64 / n
    );
    Ok(())
}

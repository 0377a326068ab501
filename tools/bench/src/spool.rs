//! `flowlink-bench spool`: writing batches to the spool (atomic, fsynced)
//! and replaying them, in a temporary data directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use flowlink::metrics::UploadCounters;
use flowlink::proto::{AggregatedFlow, FlowBatch};
use flowlink::spool::{Spool, SpoolLimits, encode_record};

#[derive(clap::Args)]
pub struct SpoolArgs {
    /// Batches to write and replay.
    #[arg(long, default_value_t = 200)]
    batches: u32,
    /// Aggregated flows per batch.
    #[arg(long, default_value_t = 1000)]
    flows: u32,
}

pub fn run(args: SpoolArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("flowlink-bench-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = SpoolLimits {
        max_bytes: u64::MAX,
        retention: Duration::from_secs(86_400),
    };
    let mut spool = Spool::open(&dir, limits, Arc::new(UploadCounters::default()))?;
    let batch = FlowBatch {
        batch_id: "bench".into(),
        consumer: "bench".into(),
        flows: (0..args.flows)
            .map(|i| AggregatedFlow {
                src_ip: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                dst_ip: std::net::Ipv4Addr::new(192, 168, 0, 1).into(),
                dst_port: 443,
                protocol: 6,
                connections: 3,
                packets: 30,
                bytes: 4500,
                first_seen_ms: 1_700_000_000_000,
                last_seen_ms: 1_700_000_001_000,
                exporter: std::net::Ipv4Addr::LOCALHOST.into(),
                action: 0,
            })
            .collect(),
        ..Default::default()
    };
    let size = encode_record(&batch).len();

    let started = Instant::now();
    for _ in 0..args.batches {
        spool.push(&batch)?;
    }
    let write = started.elapsed();

    let started = Instant::now();
    let mut replayed = 0;
    while let Some(entry) = spool.oldest() {
        replayed += entry.batch.flows.len();
        spool.remove(&entry.name);
    }
    let replay = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);

    let n = f64::from(args.batches);
    let flows = n * f64::from(args.flows);
    println!(
        "flowlink-bench spool: {} batches of {} flows ({size} bytes each) in {}",
        args.batches,
        args.flows,
        dir.display()
    );
    println!(
        "write (temp, fsync, rename, fsync dir): {:>8.0} batches/s, {:>10.0} flows/s, {:.1} MB/s",
        n / write.as_secs_f64(),
        flows / write.as_secs_f64(),
        n * size as f64 / write.as_secs_f64() / 1e6
    );
    println!(
        "replay (read, verify, decode, delete)  : {:>8.0} batches/s, {:>10.0} flows/s",
        n / replay.as_secs_f64(),
        replayed as f64 / replay.as_secs_f64()
    );
    Ok(())
}

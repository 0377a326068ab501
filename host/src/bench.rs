//! `flowlink bench`: throughput of a NetFlow v5 component against the same
//! decoder compiled natively, per-call overhead, and plugin load time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use flowlink_decoders::netflow;
use flowlink_plugin_sdk::Batch;

use crate::decode::resolve_plugin;
use crate::plugin::{IpAddr, Origin, ParserInstance, PluginEngine, SandboxLimits};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The NetFlow plugin (name in --plugin-dir, or a .wasm path).
    #[arg(long, default_value = "netflow")]
    plugin: String,
    #[arg(long, env = "FLOWLINK_PLUGIN_DIR", default_value = "plugins")]
    plugin_dir: PathBuf,
    /// Seconds to run each throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Records per v5 datagram (the format allows 1-30).
    #[arg(long, default_value_t = 30)]
    records: u16,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let datagram = netflow::v5::synthetic_datagram(args.records, 0);
    let empty = netflow::v5::synthetic_datagram(0, 0);

    // Load time: a fresh cache directory, loaded twice (cold, then cached).
    let wasm_path = resolve_plugin(&PluginEngine::new(None)?, &args.plugin, &args.plugin_dir)?
        .path
        .clone();
    let cache = std::env::temp_dir().join(format!("flowlink-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let engine = PluginEngine::new(Some(cache.clone()))?;
    let cold = crate::plugin::LoadedPlugin::load(&engine, &wasm_path)?;
    let cached = crate::plugin::LoadedPlugin::load(&engine, &wasm_path)?;
    let _ = std::fs::remove_dir_all(&cache);

    let native = measure(budget, args.records, || {
        let mut batch = Batch::default();
        netflow::decode(&datagram, &mut batch).expect("synthetic datagram decodes");
        std::hint::black_box(batch.flows.len());
    });

    let mut session = ParserInstance::new(
        engine.clone(),
        cached.clone(),
        "{}".into(),
        SandboxLimits::default(),
        Arc::from("bench"),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let origin = Origin {
        exporter: IpAddr::V4(0x7f00_0001),
        port: 2055,
        received_ms: 0,
    };
    let wasm = measure(budget, args.records, || {
        let parsed = session.parse(&origin, &datagram).expect("wasm parse");
        std::hint::black_box(parsed.flows.len());
    });
    let per_call = measure(budget, 1, || {
        let parsed = session.parse(&origin, &empty).expect("wasm parse");
        std::hint::black_box(parsed.flows.len());
    });

    println!(
        "flowlink bench: NetFlow v5, {} records per datagram, {:.1} s per measurement",
        args.records, args.seconds
    );
    println!(
        "plugin load, cold compile   : {:>10.2} ms",
        cold.load.elapsed.as_secs_f64() * 1e3
    );
    println!(
        "plugin load, cached (.cwasm): {:>10.2} ms",
        cached.load.elapsed.as_secs_f64() * 1e3
    );
    println!(
        "native decode               : {:>10.0} flows/s ({:.1} ns/flow)",
        native.per_sec, native.ns_each
    );
    println!(
        "wasm component (1 thread)   : {:>10.0} flows/s ({:.1} ns/flow)",
        wasm.per_sec, wasm.ns_each
    );
    println!(
        "wasm / native time ratio    : {:>10.2}",
        wasm.ns_each / native.ns_each
    );
    println!(
        "per-call overhead (0 flows) : {:>10.2} us",
        per_call.ns_each / 1e3
    );
    Ok(())
}

struct Rate {
    per_sec: f64,
    ns_each: f64,
}

/// Runs `f` repeatedly for `budget`; each call counts as `items` items.
fn measure(budget: Duration, items: u16, mut f: impl FnMut()) -> Rate {
    for _ in 0..1000 {
        f();
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        calls += 256;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = calls as f64 * f64::from(items.max(1));
    Rate {
        per_sec: total / secs,
        ns_each: secs * 1e9 / total,
    }
}

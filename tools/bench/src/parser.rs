//! `flowlink-bench parser`: throughput of a parser component against the
//! same decoder compiled natively, per-call overhead, and plugin load time.
//!
//! Input: a synthetic NetFlow v5 datagram, or `--datagrams FILE…` (e.g. a
//! capture's `dgrams/*.bin`), replayed in a loop through one session after
//! a first pass has taught it the templates.

use std::net::{IpAddr as StdIp, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flowlink_decoders::netflow::{self, NetflowDecoder};
use flowlink_decoders::sflow::SflowDecoder;
use flowlink_flow::Batch;

use super::{Rate, measure, parse_pass};
use flowlink::plugin::resolve_plugin;
use flowlink::plugin::{
    FaultReplay, IpAddr, LoadedPlugin, Message, Origin, ParserInstance, PluginEngine, SandboxLimits,
};

#[derive(clap::Args)]
pub struct ParserArgs {
    /// The plugin (name in --plugin-dir, or a .wasm path): netflow, ipfix or sflow.
    #[arg(long, default_value = "netflow")]
    plugin: String,
    #[arg(long, env = "FLOWLINK_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
    /// Seconds to run each throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Records per synthetic v5 datagram (1-30), when no --datagrams are given.
    #[arg(long, default_value_t = 30)]
    records: u16,
    /// Messages per plugin call (the daemon batches up to 64 queued messages).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Datagram files to replay instead of the synthetic v5 datagram.
    #[arg(long, num_args = 1..)]
    datagrams: Vec<PathBuf>,
}

/// The same decoding logic the component runs, compiled natively.
enum NativeDecoder {
    Netflow(NetflowDecoder),
    Sflow(SflowDecoder),
}

impl NativeDecoder {
    fn for_plugin(name: &str) -> Result<Self> {
        Ok(match name {
            "netflow" | "ipfix" => NativeDecoder::Netflow(NetflowDecoder::default()),
            "sflow" => NativeDecoder::Sflow(SflowDecoder::default()),
            other => bail!("no native counterpart for plugin {other:?}"),
        })
    }

    fn decode(&mut self, payload: &[u8], out: &mut Batch) {
        let exporter = StdIp::V4(Ipv4Addr::LOCALHOST);
        // Errors are counted by the flow totals the bench compares.
        match self {
            NativeDecoder::Netflow(d) => drop(d.decode(exporter, 1, payload, out)),
            NativeDecoder::Sflow(d) => drop(d.decode(1, payload, out)),
        }
    }
}

pub fn run(args: ParserArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let datagrams: Vec<Vec<u8>> = if args.datagrams.is_empty() {
        vec![netflow::v5::synthetic_datagram(args.records, 0); 64]
    } else {
        args.datagrams
            .iter()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .collect::<Result<_>>()?
    };
    let empty = netflow::v5::synthetic_datagram(0, 0);

    // Load time: a fresh cache directory, loaded twice (cold, then cached).
    let wasm_path = resolve_plugin(&PluginEngine::new(None)?, &args.plugin, &args.plugin_dir)?
        .path
        .clone();
    let cache = std::env::temp_dir().join(format!("flowlink-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let engine = PluginEngine::new(Some(cache.clone()))?;
    let cold = LoadedPlugin::load(&engine, &wasm_path)?;
    let cached = LoadedPlugin::load(&engine, &wasm_path)?;
    let _ = std::fs::remove_dir_all(&cache);

    let mut native = NativeDecoder::for_plugin(&cached.name)?;
    let mut warm = Batch::default();
    for d in &datagrams {
        native.decode(d, &mut warm);
    }
    let flows_per_pass = count_flows(&datagrams, |d| {
        let mut batch = Batch::default();
        native.decode(d, &mut batch);
        batch.flows.len()
    });
    // One batch, cleared between datagrams: the guest's SDK reuses its
    // buffers the same way, so neither side pays for fresh allocations.
    let mut batch = Batch::default();
    let native_rate = measure(budget, flows_per_pass, || {
        for d in &datagrams {
            batch.flows.clear();
            batch.rejected.clear();
            batch.skipped = 0;
            native.decode(d, &mut batch);
            std::hint::black_box(batch.flows.len());
        }
    });

    // The component compiled in this process, not the one mapped from the
    // cache: the same code, but perf names its functions only through
    // /tmp/perf-PID.map (FLOWLINK_WASM_PERFMAP), which covers the former.
    let mut session = ParserInstance::new(
        engine.clone(),
        cold.clone(),
        "{}".into(),
        SandboxLimits::default(),
        Arc::from("bench"),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let origin = Origin {
        exporter: IpAddr::V4(0x7f00_0001),
        port: 2055,
        received_ms: 1,
    };
    // As the daemon's workers do: up to 64 queued messages per call.
    let messages: Vec<Message> = datagrams
        .iter()
        .map(|d| Message {
            origin,
            payload: d.clone(),
        })
        .collect();
    parse_pass(&mut session, &messages, args.batch);
    let wasm_flows = parse_pass(&mut session, &messages, args.batch);
    if wasm_flows != flows_per_pass {
        bail!(
            "the component decoded {wasm_flows} flows per pass, the native decoder {flows_per_pass}"
        );
    }
    let packed_input = cached.takes_packed_input();
    if packed_input {
        // Both calls of the contract decode the same flows, or no figures.
        let pass_flows = |session: &mut ParserInstance| -> Vec<flowlink_flow::Flow> {
            messages
                .chunks(args.batch.max(1))
                .flat_map(|chunk| {
                    session
                        .parse_batch(None, chunk, FaultReplay::Capped)
                        .flows
                        .to_flows()
                })
                .collect()
        };
        let packed = pass_flows(&mut session);
        session.set_packed_input(false);
        let listed = pass_flows(&mut session);
        session.set_packed_input(true);
        if packed != listed {
            bail!("packed-input and session.parse decoded different flows");
        }
    }
    // The same through `session.parse` (how a component of contract 1.0.0
    // is called), alternated with the packed input in slices of the
    // budget: what the packed input saves, on a machine whose speed drifts.
    let (wasm_rate, list_rate) = if packed_input {
        let [packed, list] = measure_alternating(budget, flows_per_pass, |packed| {
            session.set_packed_input(packed);
            std::hint::black_box(parse_pass(&mut session, &messages, args.batch));
        });
        session.set_packed_input(true);
        (packed, Some(list))
    } else {
        let rate = measure(budget, flows_per_pass, || {
            std::hint::black_box(parse_pass(&mut session, &messages, args.batch));
        });
        (rate, None)
    };
    // One message per call too: what a quiet exporter costs (no batching).
    let single_rate = measure(budget, flows_per_pass, || {
        std::hint::black_box(parse_pass(&mut session, &messages, 1));
    });
    let per_call = measure(budget, 1, || {
        let _ = std::hint::black_box(session.parse(&origin, &empty));
    });

    let input = if args.datagrams.is_empty() {
        format!(
            "64 synthetic NetFlow v5 datagrams of {} records",
            args.records
        )
    } else {
        format!(
            "{} datagrams, {:.1} flows per datagram",
            datagrams.len(),
            flows_per_pass as f64 / datagrams.len() as f64
        )
    };
    println!(
        "flowlink-bench parser: plugin {} on {input}, {:.1} s per measurement",
        cached.name, args.seconds
    );
    println!(
        "plugin load, cold compile   : {:>12.2} ms",
        cold.load.elapsed.as_secs_f64() * 1e3
    );
    println!(
        "plugin load, cached (.cwasm): {:>12.2} ms",
        cached.load.elapsed.as_secs_f64() * 1e3
    );
    println!(
        "native decode               : {:>12.0} flows/s ({:.1} ns/flow)",
        native_rate.per_sec, native_rate.ns_each
    );
    println!(
        "wasm, {:>3} messages per call: {:>12.0} flows/s ({:.1} ns/flow)",
        args.batch, wasm_rate.per_sec, wasm_rate.ns_each
    );
    if let Some(list) = &list_rate {
        println!(
            "wasm, {:>3} as message list  : {:>12.0} flows/s ({:.1} ns/flow)",
            args.batch, list.per_sec, list.ns_each
        );
    }
    println!(
        "wasm,   1 message per call  : {:>12.0} flows/s ({:.1} ns/flow)",
        single_rate.per_sec, single_rate.ns_each
    );
    println!(
        "wasm / native time ratio    : {:>12.2} ({} per call), {:.2} (1 per call)",
        wasm_rate.ns_each / native_rate.ns_each,
        args.batch,
        single_rate.ns_each / native_rate.ns_each
    );
    println!(
        "per-call overhead (0 flows) : {:>12.2} us",
        per_call.ns_each / 1e3
    );
    Ok(())
}

/// Flows one pass over `datagrams` yields.
fn count_flows(datagrams: &[Vec<u8>], mut decode: impl FnMut(&[u8]) -> usize) -> u64 {
    datagrams.iter().map(|d| decode(d) as u64).sum()
}

/// Runs `pass(true)` and `pass(false)` in turns, ten slices of `budget`
/// each, and rates each side over its own slices.
fn measure_alternating(budget: Duration, items: u64, mut pass: impl FnMut(bool)) -> [Rate; 2] {
    const SLICES: u32 = 10;
    let slice = budget / SLICES;
    let mut spent = [Duration::ZERO; 2];
    let mut passes = [0u64; 2];
    pass(true);
    pass(false);
    for _ in 0..SLICES {
        for (side, on) in [(0, true), (1, false)] {
            let started = std::time::Instant::now();
            while started.elapsed() < slice {
                pass(on);
                passes[side] += 1;
            }
            spent[side] += started.elapsed();
        }
    }
    [0, 1].map(|side| Rate::of(passes[side], items, spent[side]))
}

//! `flowlink-bench swap`: what a hot swap costs the worker that makes it.
//! One session learns the templates of N exporters; then it moves between
//! two loaded builds of the plugin again and again (save its state, start
//! the other build, restore), each move timed: the pause a worker's
//! messages wait. Also the linear memory one instance grew to.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use flowlink::plugin::{LoadedPlugin, PluginEngine, resolve_plugin};

use crate::state::{new_session, teach};

#[derive(clap::Args)]
pub struct SwapArgs {
    #[arg(long, default_value = "netflow")]
    plugin: String,
    #[arg(long, env = "FLOWLINK_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
    /// A datagram carrying templates.
    #[arg(long)]
    templates: PathBuf,
    #[arg(long, default_value_t = 100)]
    exporters: u32,
    #[arg(long, default_value_t = 200)]
    swaps: usize,
}

pub fn run(args: SwapArgs) -> Result<()> {
    anyhow::ensure!(args.swaps > 0, "--swaps must be at least 1");
    let engine = PluginEngine::new(None)?;
    let first = resolve_plugin(&engine, &args.plugin, &args.plugin_dir)?;
    // A second load of the same file: another build to the worker.
    let second = LoadedPlugin::load(&engine, &first.path)?;
    let datagram = std::fs::read(&args.templates)?;
    let mut session = new_session(&engine, &first, "bench-swap")?;
    teach(&mut session, &datagram, args.exporters)?;
    let memory = session.memory_bytes().unwrap_or(0);
    let mut pauses: Vec<Duration> = Vec::with_capacity(args.swaps);
    for i in 0..args.swaps {
        let to = if i % 2 == 0 { &second } else { &first };
        let started = Instant::now();
        session.swap_plugin(to.clone());
        pauses.push(started.elapsed());
    }
    pauses.sort();
    let at = |q: f64| pauses[((pauses.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "flowlink-bench swap: plugin {}, {} exporters' templates, {} swaps",
        first.name, args.exporters, args.swaps
    );
    println!("swap pause p50       : {:.3} ms", at(0.5));
    println!("swap pause p99       : {:.3} ms", at(0.99));
    println!(
        "instance memory      : {:.2} MiB",
        memory as f64 / (1 << 20) as f64
    );
    Ok(())
}

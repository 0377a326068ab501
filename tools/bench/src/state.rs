//! `flowlink-bench state`: what persisting parser state costs. One netflow
//! session learns the templates of a capture's template datagram from N
//! exporters; then its snapshot is taken, written as the daemon writes it
//! (atomic, fsynced) and restored into a fresh session, each timed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use flowlink::parser_state::ParserStateStore;
use flowlink::plugin::resolve_plugin;
use flowlink::plugin::{
    FaultReplay, IpAddr, LoadedPlugin, Message, Origin, ParserInstance, PluginEngine, SandboxLimits,
};

#[derive(clap::Args)]
pub struct StateArgs {
    #[arg(long, default_value = "netflow")]
    plugin: String,
    #[arg(long, env = "FLOWLINK_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
    /// A datagram carrying templates (softflowd's first has 4 data
    /// templates and an options template).
    #[arg(long)]
    templates: PathBuf,
    /// Exporters that send it (10.0.0.0/8 addresses).
    #[arg(long, default_value_t = 1000)]
    exporters: u32,
    /// Repetitions of each measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub fn run(args: StateArgs) -> Result<()> {
    let engine = PluginEngine::new(None)?;
    let plugin = resolve_plugin(&engine, &args.plugin, &args.plugin_dir)?;
    let datagram = std::fs::read(&args.templates)?;
    let session = |tag: &str| new_session(&engine, &plugin, tag);
    let mut learner = session("bench-learn")?;
    teach(&mut learner, &datagram, args.exporters)?;
    let dir = std::env::temp_dir().join(format!("flowlink-bench-state-{}", std::process::id()));
    let store = ParserStateStore::new(&dir);
    let (mut save, mut write, mut restore) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.runs {
        let started = Instant::now();
        let state = learner
            .snapshot()
            .ok_or_else(|| anyhow::anyhow!("no state"))?;
        save.push(started.elapsed());
        size = state.len();
        let started = Instant::now();
        store.write("bench", 0, &plugin.name, &state)?;
        write.push(started.elapsed());
        let mut fresh = session("bench-restore")?;
        let started = Instant::now();
        fresh.restore(&state).map_err(|e| anyhow::anyhow!(e))?;
        restore.push(started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "flowlink-bench state: plugin {}, {} exporters × the templates of {}",
        plugin.name,
        args.exporters,
        args.templates.display()
    );
    println!("snapshot size              : {size} bytes");
    println!("save-state (in the sandbox): {}", summary(&mut save));
    println!("write (atomic, fsynced)    : {}", summary(&mut write));
    println!("restore-state              : {}", summary(&mut restore));
    Ok(())
}

/// A session of `plugin` allowed to learn a million templates.
pub(crate) fn new_session(
    engine: &Arc<PluginEngine>,
    plugin: &Arc<LoadedPlugin>,
    tag: &str,
) -> Result<ParserInstance> {
    ParserInstance::new(
        engine.clone(),
        plugin.clone(),
        "{\"max_templates\": 1000000}".into(),
        SandboxLimits::default(),
        Arc::from(tag),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Sends `datagram` (templates) from `exporters` exporters, 10.0.0.0/8.
pub(crate) fn teach(session: &mut ParserInstance, datagram: &[u8], exporters: u32) -> Result<()> {
    let messages: Vec<Message> = (0..exporters)
        .map(|i| Message {
            origin: Origin {
                exporter: IpAddr::V4(0x0a00_0000 + i),
                port: 2055,
                received_ms: 1,
            },
            payload: datagram.to_vec(),
        })
        .collect();
    for chunk in messages.chunks(64) {
        for result in session
            .parse_batch(None, chunk, FaultReplay::Capped)
            .outcomes
        {
            if let Err(e) = result {
                bail!("the template datagram did not parse: {e}");
            }
        }
    }
    Ok(())
}

/// `median (min–max)` in milliseconds.
fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:.2} ms (min {:.2}, max {:.2})",
        ms(&times[times.len() / 2]),
        ms(&times[0]),
        ms(&times[times.len() - 1])
    )
}

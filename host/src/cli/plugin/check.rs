//! `flowlink plugin check`: a component loaded exactly as the daemon loads
//! it (contract version, granted imports, `info()`, a session opened with
//! the given properties), then run over sample inputs: the flows as JSON
//! lines on stdout, the report on stderr, a non-zero exit when the daemon
//! would refuse it or it faults on a sample.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::decode::{default_exporter, flow_json, read_messages};
use flowlink::pipeline::now_ms;
use flowlink::plugin::{
    LoadedPlugin, Origin, ParserInstance, PluginEngine, SandboxLimits, WIT_VERSION, ip_to_wit,
};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The component (.wasm).
    pub file: PathBuf,
    /// Sample input, repeatable: a capture (pcap or pcapng: each UDP
    /// datagram is a message) or any other file (one message).
    #[arg(long)]
    pub sample: Vec<PathBuf>,
    /// The parser's properties, as JSON (a consumer's `parser.properties`).
    #[arg(long, default_value = "{}")]
    pub properties: String,
    /// Exporter address given to raw sample files.
    #[arg(long)]
    pub exporter: Option<SocketAddr>,
}

/// How long the samples are parsed again and again for the time figure.
const TIMING: Duration = Duration::from_millis(300);

pub fn check(args: CheckArgs) -> Result<()> {
    let engine = PluginEngine::new(None)?;
    let plugin = LoadedPlugin::load(&engine, &args.file)?;
    let size = std::fs::metadata(&args.file).map_or(0, |m| m.len());
    eprintln!(
        "component  {} ({size} bytes, sha256 {})",
        plugin.path.display(),
        plugin.load.digest
    );
    eprintln!(
        "parser     {} {} (formats: {})",
        plugin.name,
        plugin.version,
        plugin.formats.join(", ")
    );
    eprintln!(
        "contract   flowlink:parser@{} (this flowlink: {WIT_VERSION})",
        plugin.contract
    );
    eprintln!(
        "calls      {}",
        if plugin.takes_packed_input() {
            "packed-input.parse-packed (a call's payloads in one buffer)"
        } else {
            "session.parse (a list of messages; the packed input is contract 1.1.0)"
        }
    );
    eprintln!("imports    {} (all granted)", plugin.imports.join(", "));
    eprintln!(
        "compile    {:.1} ms",
        plugin.load.elapsed.as_secs_f64() * 1e3
    );
    let tag: Arc<str> = format!("plugin={} check", plugin.name).into();
    let name = plugin.name.clone();
    let mut session = ParserInstance::new(
        engine,
        plugin,
        args.properties.clone(),
        SandboxLimits::default(),
        tag,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{name}: refused to open with properties {}: {e}",
            args.properties
        )
    })?;

    let exporter = args.exporter.unwrap_or_else(default_exporter);
    let mut messages = Vec::new();
    for file in &args.sample {
        let read =
            read_messages(file, exporter).with_context(|| format!("reading {}", file.display()))?;
        messages.extend(read.messages.into_iter().map(|m| (file.clone(), m)));
    }
    if messages.is_empty() {
        eprintln!("samples    none (--sample FILE runs the parser on it)");
        return Ok(());
    }

    let mut out = BufWriter::new(std::io::stdout().lock());
    let (mut flows, mut rejected, mut refused, mut faults) = (0usize, 0usize, 0usize, 0usize);
    let origin_of = |m: &crate::cli::decode::CaptureMessage| Origin {
        exporter: ip_to_wit(m.exporter.ip()),
        port: m.exporter.port(),
        received_ms: m.received_ms.unwrap_or_else(now_ms),
    };
    for (index, (file, message)) in messages.iter().enumerate() {
        match session.parse(&origin_of(message), &message.payload) {
            Ok(parsed) => {
                for flow in &parsed.flows {
                    serde_json::to_writer(&mut out, &flow_json(flow, message.exporter.ip()))?;
                    out.write_all(b"\n")?;
                }
                flows += parsed.flows.len();
                rejected += parsed.rejected.len();
                for r in &parsed.rejected {
                    eprintln!(
                        "{}: message {index}: record {} rejected: {}",
                        file.display(),
                        r.index,
                        r.reason
                    );
                }
            }
            Err(failure) => {
                if failure.is_plugin_fault() {
                    faults += 1;
                } else {
                    refused += 1;
                }
                eprintln!("{}: message {index}: {failure}", file.display());
            }
        }
    }
    out.flush()?;

    // Time: the samples again and again (templates known by now), per message.
    let started = Instant::now();
    let mut parsed = 0u64;
    while parsed == 0 || started.elapsed() < TIMING {
        for (_, message) in &messages {
            let _ = session.parse(&origin_of(message), &message.payload);
            parsed += 1;
        }
    }
    let per_message = started.elapsed().as_secs_f64() * 1e6 / parsed as f64;
    eprintln!(
        "samples    {} messages: {flows} flows, {rejected} records rejected, {refused} messages refused, {faults} plugin faults",
        messages.len()
    );
    eprintln!(
        "time       {per_message:.2} µs per message (mean of {parsed} calls, one message each)"
    );
    if let Some(memory) = session.memory_bytes() {
        eprintln!("memory     {} KiB of linear memory", memory / 1024);
    }
    if faults > 0 {
        bail!("{name} faulted on {faults} sample messages: the daemon would count them lost");
    }
    Ok(())
}

//! `flowlink decode`: run a parser plugin over captures or raw datagram files
//! and print every flow as a JSON line. What a user reaches for when a
//! vendor's export looks wrong.

mod capture;

use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use flowlink::pipeline::now_ms;
use flowlink_flow::{Action, Flow, ip_to_std};

use flowlink::plugin::{
    Origin, ParserInstance, PluginEngine, SandboxLimits, ip_to_wit, resolve_plugin,
};

pub use capture::{CaptureMessage, FileMessages, read_messages};

pub struct DecodeArgs {
    pub plugin: String,
    pub plugin_dir: PathBuf,
    pub properties: String,
    pub files: Vec<PathBuf>,
    /// Exporter address given to raw datagram files (captures carry their own).
    pub exporter: SocketAddr,
}

/// A closed stdout (`flowlink decode … | head`) ends the run quietly.
pub fn run(engine: Arc<PluginEngine>, args: DecodeArgs) -> Result<()> {
    match decode_all(engine, args) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn decode_all(engine: Arc<PluginEngine>, args: DecodeArgs) -> Result<()> {
    let plugin = resolve_plugin(&engine, &args.plugin, &args.plugin_dir)?;
    let tag: Arc<str> = format!("plugin={} decode", plugin.name).into();
    let mut session = ParserInstance::new(
        engine,
        plugin,
        args.properties,
        SandboxLimits::default(),
        tag,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut messages, mut flows, mut rejected, mut failed) = (0u64, 0u64, 0u64, 0u64);
    // Captures that held frames but no datagram: the run fails after the rest.
    let mut nothing_decoded = Vec::new();
    for file in &args.files {
        let read = read_messages(file, args.exporter)
            .with_context(|| format!("reading {}", file.display()))?;
        for (reason, count) in &read.skipped {
            eprintln!("{}: {} skipped: {reason}", file.display(), frames(*count));
        }
        if read.frames > 0 && read.messages.is_empty() {
            nothing_decoded.push(no_datagrams(file, &read));
        }
        for (index, message) in read.messages.into_iter().enumerate() {
            messages += 1;
            let origin = Origin {
                exporter: ip_to_wit(message.exporter.ip()),
                port: message.exporter.port(),
                received_ms: message.received_ms.unwrap_or_else(now_ms),
            };
            match session.parse(&origin, &message.payload) {
                Ok(parsed) => {
                    for flow in &parsed.flows {
                        serde_json::to_writer(&mut out, &flow_json(flow, message.exporter.ip()))
                            .map_err(std::io::Error::from)?;
                        out.write_all(b"\n")?;
                    }
                    flows += parsed.flows.len() as u64;
                    rejected += parsed.rejected.len() as u64;
                    for r in &parsed.rejected {
                        eprintln!(
                            "{}: message {index}: record {}: {}",
                            file.display(),
                            r.index,
                            r.reason
                        );
                    }
                }
                Err(failure) => {
                    failed += 1;
                    eprintln!("{}: message {index}: {failure}", file.display());
                }
            }
        }
    }
    out.flush()?;
    eprintln!(
        "decoded {messages} messages: {flows} flows, {rejected} records rejected, {failed} messages failed"
    );
    if !nothing_decoded.is_empty() {
        bail!("{}", nothing_decoded.join("; "));
    }
    Ok(())
}

fn frames(count: u64) -> String {
    format!("{count} frame{}", if count == 1 { "" } else { "s" })
}

/// Why a capture with frames gave nothing to decode: each reason, with its count.
fn no_datagrams(file: &Path, read: &FileMessages) -> String {
    let reasons: Vec<String> = read
        .skipped
        .iter()
        .map(|(reason, count)| format!("{reason}: {}", frames(*count)))
        .collect();
    format!(
        "{}: no UDP datagram to decode in {} ({})",
        file.display(),
        frames(read.frames),
        reasons.join("; ")
    )
}

pub fn default_exporter() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}

/// One flow as `decode` and `plugin check` print it.
pub fn flow_json(flow: &Flow, exporter: IpAddr) -> serde_json::Value {
    serde_json::json!({
        "src_addr": ip_to_std(flow.src).to_string(),
        "dst_addr": ip_to_std(flow.dst).to_string(),
        "src_port": flow.src_port,
        "dst_port": flow.dst_port,
        "protocol": flow.protocol,
        "packets": flow.packets,
        "bytes": flow.bytes,
        "start_ms": flow.start_ms,
        "end_ms": flow.end_ms,
        "tcp_flags": flow.tcp_flags,
        "icmp_type": flow.icmp_type,
        "icmp_code": flow.icmp_code,
        "sampling_interval": flow.sampling_interval,
        "action": match flow.action {
            Action::Unknown => "unknown",
            Action::Accept => "accept",
            Action::Reject => "reject",
        },
        "exporter": exporter.to_string(),
    })
}

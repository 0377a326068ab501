//! `flowlink-pce-emulator`: a local stand-in for the PCE's upload endpoints,
//! for the quick start and the tests: same paths, Basic auth, the PCE's
//! limits, a JSON view of what it accepted (kept durably with
//! `--state-file`), and fault modes. Not part of the daemon.

mod fault;
mod page;
mod received;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use flowlink::config::ApiKey;

use fault::{Fault, FaultMode};
use server::EmulatorOptions;

#[derive(Parser)]
#[command(
    name = "flowlink-pce-emulator",
    version,
    about = "Run a local PCE emulator that accepts flowlink's uploads"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// KEY:SECRET the emulator accepts.
    #[arg(long, default_value = "flowlink-demo:flowlink-demo-secret")]
    api_key: String,
    /// Keep what was accepted in this file (JSON lines) and start from it.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Start misbehaving: ok, refuse, unavailable (503), too_many_requests (429),
    /// slow, unauthorized (401). Change it later with POST /emulator/fault.
    #[arg(long, default_value = "ok")]
    fault: String,
    /// Retry-After seconds sent with 429.
    #[arg(long, default_value_t = 5)]
    retry_after: u64,
    /// Delay of the slow mode, milliseconds.
    #[arg(long, default_value_t = 5000)]
    delay_ms: u64,
    /// Serve HTTPS with a fresh self-signed certificate for localhost,
    /// written to this file (PEM) for clients to trust.
    #[arg(long)]
    tls_cert_out: Option<PathBuf>,
    /// Behave like a stock PCE: Bulk Traffic Loader (CSV) only, no protobuf endpoint.
    #[arg(long)]
    stock: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOWLINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlink-pce-emulator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let (key, secret) = args
        .api_key
        .split_once(':')
        .context("--api-key must be KEY:SECRET")?;
    let mode: FaultMode = serde_json::from_value(serde_json::Value::String(args.fault.clone()))
        .with_context(|| format!("--fault {:?}: not a fault mode", args.fault))?;
    let options = EmulatorOptions {
        listen: args.listen,
        api_key: ApiKey::new(key, secret),
        state_file: args.state_file,
        fault: Fault {
            mode,
            retry_after_seconds: args.retry_after,
            delay_ms: args.delay_ms,
        },
        tls_cert_out: args.tls_cert_out,
        stock: args.stock,
    };
    tokio::runtime::Runtime::new()?.block_on(server::serve(options))
}

//! flowlink: collects flow records, parses them in sandboxed WebAssembly
//! plugins, aggregates them and uploads them to an Illumio PCE.

mod aggregator;
mod bench;
mod config;
mod connector;
mod daemon;
mod decode;
mod metrics;
mod metrics_reporter;
mod parser_state;
mod pce_emulator;
mod pipeline;
mod plugin;
mod proto;
mod spool;
mod uploader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "flowlink",
    version,
    about = "Flow collector for the Illumio PCE, with sandboxed WebAssembly parsers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Run {
        /// The YAML configuration (or set CONFIG_FILE).
        #[arg(long, env = "CONFIG_FILE")]
        config: PathBuf,
    },
    /// Validate a configuration and its plugins, print every problem, exit non-zero if any.
    CheckConfig {
        #[arg(long, env = "CONFIG_FILE")]
        config: PathBuf,
    },
    /// Decode captures (pcap/pcapng) or raw datagram files with a plugin; one JSON flow per line.
    Decode {
        /// A plugin name (looked up in --plugin-dir) or a path to a .wasm file.
        #[arg(long)]
        plugin: String,
        /// Default: the built-in plugins (see docs/configuration.md).
        #[arg(long, env = "FLOWLINK_PLUGIN_DIR")]
        plugin_dir: Option<PathBuf>,
        /// The parser's properties, as JSON.
        #[arg(long, default_value = "{}")]
        properties: String,
        /// Exporter address reported for raw datagram files.
        #[arg(long)]
        exporter: Option<SocketAddr>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the plugins in a directory.
    Plugins {
        /// Default: the built-in plugins.
        #[arg(long, env = "FLOWLINK_PLUGIN_DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Run a local PCE emulator that accepts flowlink's uploads.
    PceEmulator {
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
    },
    /// Measure parsers (wasm against native), the aggregator and the spool.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = std::env::var("FLOWLINK_LOG_FORMAT").is_ok_and(|v| v == "json");
    init_tracing(json_logs);
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlink: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOWLINK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Run { config } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("flowlink-io")
            .build()
            .context("starting the async runtime")?
            .block_on(async {
                // First, so no signal meets its default action during start-up.
                let signals = daemon::Signals::arm()?;
                let config = config::load(&config)?;
                daemon::run(config, signals).await
            }),
        Command::CheckConfig { config: path } => {
            let config = config::load(&path)?;
            let (engine, registry) = daemon::load_plugins(&config)?;
            for consumer in &config.consumers {
                let plugin = registry
                    .get(&consumer.parser.plugin)
                    .expect("checked by load_plugins");
                plugin::ParserInstance::new(
                    engine.clone(),
                    plugin.clone(),
                    consumer.parser.properties_json.clone(),
                    consumer.parser.limits,
                    format!("check-config consumer={}", consumer.name).into(),
                )
                .map_err(|e| {
                    anyhow::anyhow!(
                        "invalid configuration {}: consumer {:?}: parser {:?} refused to start: {e}",
                        config.file.display(),
                        consumer.name,
                        plugin.name
                    )
                })?;
            }
            println!(
                "{}: OK ({} consumers)",
                config.file.display(),
                config.consumers.len()
            );
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in config::describe(&config, &text) {
                println!("  {line}");
            }
            for consumer in &config.consumers {
                if let Some(p) = registry.get(&consumer.parser.plugin) {
                    println!("  parser {} {}: {}", p.name, p.version, p.path.display());
                }
            }
            Ok(())
        }
        Command::Decode {
            plugin,
            plugin_dir,
            properties,
            exporter,
            files,
        } => {
            let engine = plugin::PluginEngine::new(user_cache_dir())?;
            decode::run(
                engine,
                decode::DecodeArgs {
                    plugin,
                    plugin_dir: plugin_dir_or_builtin(plugin_dir),
                    properties,
                    files,
                    exporter: exporter.unwrap_or_else(decode::default_exporter),
                },
            )
        }
        Command::Plugins { plugin_dir } => {
            let engine = plugin::PluginEngine::new(user_cache_dir())?;
            let registry =
                plugin::PluginRegistry::load_dir(&engine, &plugin_dir_or_builtin(plugin_dir))?;
            for p in registry.all() {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.name,
                    p.version,
                    p.formats.join(","),
                    p.path.display()
                );
            }
            Ok(())
        }
        Command::PceEmulator {
            listen,
            api_key,
            state_file,
            fault,
            retry_after,
            delay_ms,
            tls_cert_out,
            stock,
        } => {
            let (key, secret) = api_key
                .split_once(':')
                .context("--api-key must be KEY:SECRET")?;
            let mode: pce_emulator::FaultMode =
                serde_json::from_value(serde_json::Value::String(fault.clone()))
                    .with_context(|| format!("--fault {fault:?}: not a fault mode"))?;
            let options = pce_emulator::EmulatorOptions {
                listen,
                api_key: config::ApiKey::new(key, secret),
                state_file,
                fault: pce_emulator::Fault {
                    mode,
                    retry_after_seconds: retry_after,
                    delay_ms,
                },
                tls_cert_out,
                stock,
            };
            tokio::runtime::Runtime::new()?.block_on(pce_emulator::serve(options))
        }
        Command::Bench(args) => bench::run(args),
    }
}

/// `--plugin-dir`, else the plugins that ship with flowlink.
fn plugin_dir_or_builtin(dir: Option<PathBuf>) -> PathBuf {
    dir.or_else(plugin::builtin_plugin_dir)
        .unwrap_or_else(|| PathBuf::from("build/plugins"))
}

/// Where the CLI tools keep compiled plugins: `$XDG_CACHE_HOME/flowlink` or
/// `~/.cache/flowlink`; no cache when neither is known.
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("flowlink").join("plugins"))
}

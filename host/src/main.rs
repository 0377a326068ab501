//! `flowlink`: the command line over the `flowlink` library: run the
//! collector, check a configuration, decode or replay captures, list
//! plugins, start the PCE emulator (a binary of its own).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use flowlink::{config, daemon, plugin};

use cli::decode;

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
    /// Send the datagrams of captures or datagram files to a collector over UDP, as live
    /// traffic: a fixed rate or as fast as possible, looping, from several exporters.
    Replay(cli::replay::ReplayArgs),
    /// Print the JSON Schema of the configuration file (flowlink_config_schema.json).
    Schema,
    /// Write, build and check a parser plugin of your own (docs/plugin-sdk.md).
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
    /// List the plugins in a directory.
    Plugins {
        /// Default: the built-in plugins.
        #[arg(long, env = "FLOWLINK_PLUGIN_DIR")]
        plugin_dir: Option<PathBuf>,
    },
    /// Run a local PCE emulator (the `flowlink-pce-emulator` binary beside this one;
    /// `flowlink pce-emulator --help` for its options).
    #[command(disable_help_flag = true)]
    PceEmulator {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs as its configuration says, once it is loaded; the tools
    // log as the environment says.
    if !matches!(cli.command, Command::Run { .. }) {
        flowlink::logging::init(&config::LogConfig {
            format: config::LogFormat::Text,
            level: "info".to_owned(),
        });
    }
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlink: {e:#}");
            ExitCode::FAILURE
        }
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
                flowlink::logging::init(&config.log);
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
                "{}: OK ({} consumers{})",
                config.file.display(),
                config.consumers.len() + config.relays.len(),
                if config.relays.is_empty() {
                    String::new()
                } else {
                    format!(", {} relaying to Kafka", config.relays.len())
                }
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
        Command::Replay(args) => cli::replay::run(args),
        Command::Schema => {
            println!("{}", config::schema_json());
            Ok(())
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
        Command::Plugin(command) => cli::plugin::run(command),
        Command::PceEmulator { args } => cli::exec_sibling("flowlink-pce-emulator", &args),
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

//! `flowlink-bench`: measured figures for docs/performance.md. Not tests:
//! numbers to compare, with the command that produced them. A binary of
//! its own, so none of it is compiled into the daemon.

mod aggregator;
mod kafka;

mod parser;
mod spool;
mod state;
mod swap;
mod text;

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use flowlink::plugin::{FaultReplay, Message, ParserInstance};

#[derive(Parser)]
#[command(
    name = "flowlink-bench",
    version,
    about = "Measure flowlink: parsers (wasm against native), the aggregator, the spool, text formats, Kafka, state snapshots"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlink-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// A parser component against the same decoder compiled natively.
    Parser(parser::ParserArgs),
    /// Aggregator throughput and resident memory at a number of distinct keys.
    Aggregator(aggregator::AggregatorArgs),
    /// Spool write (atomic, fsynced) and replay throughput.
    Spool(spool::SpoolArgs),
    /// Lines per second through the text and vpc-flow components.
    Text(text::TextArgs),
    /// Kafka consume rate against a running broker.
    Kafka(kafka::KafkaArgs),
    /// Parser state snapshots: size, save, write and restore times.
    State(state::StateArgs),
    /// Hot swap: the pause per swap (p50, p99) and an instance's memory.
    Swap(swap::SwapArgs),
}

fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Parser(args) => parser::run(args),
        BenchCommand::Aggregator(args) => aggregator::run(args),
        BenchCommand::Spool(args) => spool::run(args),
        BenchCommand::Text(args) => text::run(args),
        BenchCommand::Kafka(args) => kafka::run(args),
        BenchCommand::State(args) => state::run(args),
        BenchCommand::Swap(args) => swap::run(args),
    }
}

struct Rate {
    per_sec: f64,
    ns_each: f64,
}

impl Rate {
    /// `passes` of `items` items each in `elapsed`.
    fn of(passes: u64, items: u64, elapsed: Duration) -> Rate {
        let total = (passes * items.max(1)) as f64;
        let secs = elapsed.as_secs_f64();
        Rate {
            per_sec: total / secs,
            ns_each: secs * 1e9 / total,
        }
    }
}

/// Runs `pass` repeatedly for `budget`; each pass counts as `items` items.
fn measure(budget: Duration, items: u64, mut pass: impl FnMut()) -> Rate {
    let warmup = Instant::now();
    while warmup.elapsed() < budget / 10 {
        pass();
    }
    let started = Instant::now();
    let mut passes = 0u64;
    while started.elapsed() < budget {
        pass();
        passes += 1;
    }
    Rate::of(passes, items, started.elapsed())
}

/// Flows from one pass over `messages` through `session`, `batch` messages
/// per plugin call as the daemon's workers make them.
fn parse_pass(session: &mut ParserInstance, messages: &[Message], batch: usize) -> u64 {
    messages
        .chunks(batch.max(1))
        .map(|chunk| {
            session
                .parse_batch(None, chunk, FaultReplay::Capped)
                .flows
                .len() as u64
        })
        .sum()
}

/// Resident set size of this process, bytes (Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

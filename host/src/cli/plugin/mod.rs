//! `flowlink plugin new | build | check`: write a parser of your own outside
//! this repository, build it into a component, and check it before a daemon
//! takes it.

mod build;
mod check;
mod new;
mod sdk_files;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};

pub use build::build;
pub use check::{CheckArgs, check};
pub use new::{Kind, new_project};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Write a buildable plugin project (SDK, sample input, tests) in DIR/NAME.
    New {
        /// The parser's name: what consumers put in `parser.type`.
        name: String,
        /// A text format (log lines) or a binary one (datagrams).
        #[arg(long, value_enum, default_value_t = KindArg::Text)]
        kind: KindArg,
        /// The folder to create the project in (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build the project in DIR (default: the current folder) into a
    /// component for wasm32-wasip2 and print its path.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Load a component as the daemon would and report on it: info(), the
    /// contract version, its imports, and on samples its flows (JSON lines on
    /// stdout), time and memory per message.
    Check(CheckArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    Text,
    Binary,
}

pub fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::New { name, kind, dir } => {
            let kind = match kind {
                KindArg::Text => Kind::Text,
                KindArg::Binary => Kind::Binary,
            };
            let project = new_project(&dir, &name, kind)?;
            println!("{}", project.display());
            eprintln!(
                "created {}: `cd {} && cargo test && flowlink plugin build`",
                project.display(),
                project.display()
            );
            Ok(())
        }
        PluginCommand::Build { dir } => {
            let wasm = build(&dir)?;
            println!("{}", wasm.display());
            Ok(())
        }
        PluginCommand::Check(args) => check(args),
    }
}

//! The subcommands that are not the daemon itself: `decode` (a plugin over
//! captures), `replay` (captures to a collector, as live traffic), `plugin`
//! (write, build and check a parser of your own).

pub mod decode;
pub mod plugin;
pub mod replay;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// Replaces this process with `name`, a binary installed beside this one
/// (the PCE emulator ships as its own binary, not inside the daemon).
pub fn exec_sibling(name: &str, args: &[OsString]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("locating the flowlink binary")?;
    let sibling: PathBuf = exe
        .parent()
        .map(|dir| dir.join(name))
        .context("the flowlink binary has no folder")?;
    let error = std::process::Command::new(&sibling).args(args).exec();
    Err(error).with_context(|| format!("running {}", sibling.display()))
}

//! `flowlink plugin build`: cargo with the component target and profile,
//! the target installed by rustup when missing; the component's path from
//! cargo's own artifact messages (whatever the target directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const TARGET: &str = "wasm32-wasip2";

/// Builds the project in `dir` and returns the component's path.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: run this in a plugin project (flowlink plugin new NAME writes one)",
            dir.display()
        );
    }
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        // cargo printed the compiler's errors above.
        bail!("the build of {} failed (above)", dir.display());
    }
    component_path(&output.stdout).with_context(|| {
        format!(
            "cargo built no .wasm for {}: is it a cdylib?",
            dir.display()
        )
    })
}

/// The last `.wasm` cargo reported for a `cdylib` target.
fn component_path(messages: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Adds the wasm32-wasip2 target through rustup when it is missing. Without
/// rustup the build itself says what is wrong.
fn ensure_target() -> Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_comes_from_cargos_artifact_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}
not json
{"reason":"compiler-artifact","target":{"kind":["cdylib","rlib"]},"filenames":["/t/wasm32-wasip2/release/pipe_log.wasm","/t/libpipe_log.rlib"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            component_path(messages),
            Some(PathBuf::from("/t/wasm32-wasip2/release/pipe_log.wasm"))
        );
        assert_eq!(component_path(b"{}"), None);
    }
}

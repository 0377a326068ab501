//! Harness for flowlink's end-to-end tests: finds the built binary and
//! plugins, starts the real daemon and PCE emulator as child processes,
//! and reads the independent exporters' fixtures.
//!
//! Build first (`scripts/test` does): the binary, `build/plugins/` and
//! `build/test-plugins/` must exist.

pub mod config;
pub mod fixtures;
pub mod peers;
pub mod process;
pub mod records;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use config::DaemonConfig;
pub use fixtures::{
    CsvFlow, ExpectedFlow, RecordTuple, aggregate, aggregate_unfolded, capture_dir, datagram_files,
    expected_aggregation, expected_flows, ground_truth_conversations, json_tuple, read_flows_csv,
};
pub use process::{
    Daemon, Emulator, assert_totals, decode_json, free_tcp_port, free_udp_port, run_flowlink,
    scrape, temp_dir, wait_file_resume_point, wait_for,
};
pub use traffic::{distinct_key_datagrams, send_capture, send_datagrams};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn must_exist(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {} — run `scripts/test` (it builds the binary and plugins first)",
        path.display()
    );
    path
}

/// The newest modification time of the sources under `dirs` (Rust, TOML,
/// WIT, proto), skipping fuzz targets and build output.
fn newest_source(dirs: &[&str]) -> Option<(SystemTime, PathBuf)> {
    fn walk(dir: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !matches!(name.to_str(), Some("target" | "fuzz" | "tests")) {
                    walk(&path, newest);
                }
                continue;
            }
            let source = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("rs" | "toml" | "wit" | "proto")
            );
            if let (true, Ok(modified)) = (source, entry.metadata().and_then(|m| m.modified()))
                && newest.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                *newest = Some((modified, path));
            }
        }
    }
    let mut newest = None;
    for dir in dirs {
        walk(&repo_root().join(dir), &mut newest);
    }
    newest
}

/// Refuses to test a build older than its sources: a stale binary or
/// plugin would pass or fail for the wrong reason.
fn must_be_fresh(built: PathBuf, sources: &[&str], what: &str) -> PathBuf {
    let built_at = std::fs::metadata(&built)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Some((newest, source)) = newest_source(sources) {
        assert!(
            built_at >= newest,
            "{what} at {} is older than {} — run `scripts/test` (it rebuilds first)",
            built.display(),
            source.display()
        );
    }
    built
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// What the daemon is built from; the emulator adds its own folder.
const HOST_SOURCES: &[&str] = &["host", "crates", "wit", "proto"];
const EMULATOR_SOURCES: &[&str] = &["host", "crates", "wit", "proto", "tools/pce-emulator"];
/// What the plugin components are built from.
const PLUGIN_SOURCES: &[&str] = &["crates", "plugins", "wit"];

/// The `flowlink` binary: `$FLOWLINK_BIN`, else the cargo target
/// directory's debug build, checked to be newer than its sources (and the
/// emulator beside it, which `flowlink pce-emulator` runs).
pub fn flowlink_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("FLOWLINK_BIN") {
                return must_exist(PathBuf::from(bin), "FLOWLINK_BIN");
            }
            let debug = target_dir().join("debug");
            let emulator = must_exist(
                debug.join("flowlink-pce-emulator"),
                "the flowlink-pce-emulator binary",
            );
            must_be_fresh(emulator, EMULATOR_SOURCES, "the PCE emulator");
            let bin = must_exist(debug.join("flowlink"), "the flowlink binary");
            must_be_fresh(bin, HOST_SOURCES, "the flowlink binary")
        })
        .clone()
}

/// First-party plugins (`scripts/build-plugins` puts them there).
pub fn plugin_dir() -> PathBuf {
    let dir = must_exist(
        repo_root().join("build").join("plugins"),
        "the plugin directory",
    );
    must_be_fresh(dir.join("netflow.wasm"), PLUGIN_SOURCES, "build/plugins")
        .parent()
        .map(Path::to_path_buf)
        .expect("a folder")
}

/// Test-only plugins (the hostile one).
pub fn test_plugin_dir() -> PathBuf {
    let dir = must_exist(
        repo_root().join("build").join("test-plugins"),
        "the test plugin directory",
    );
    must_be_fresh(
        dir.join("hostile.wasm"),
        &["crates", "tests/hostile-plugin", "wit"],
        "build/test-plugins",
    );
    dir
}

//! Harness for flowlink's end-to-end tests: finds the built binary and
//! plugins, starts the real daemon and PCE emulator as child processes,
//! and reads the independent exporters' fixtures.
//!
//! Build first (`scripts/test` does): the binary, `build/plugins/` and
//! `build/test-plugins/` must exist.

pub mod config;
pub mod fixtures;
pub mod lcg;
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
    Daemon, Emulator, assert_totals, decode_json, file_resume_point, free_tcp_port, free_udp_port,
    run_flowlink, scrape, temp_dir, wait_file_resume_point, wait_for, window_checkpoints,
};
pub use traffic::{distinct_key_datagrams, send_capture, send_datagrams};

/// Puts `bytes` in `dir` as `file` the way a deployment does: written under
/// a temporary name, then renamed into place.
pub fn install_plugin(dir: &Path, file: &str, bytes: &[u8]) {
    let staging = dir.join(format!(".{file}.new"));
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(&staging, dir.join(file)).unwrap();
}

/// A component with a custom section appended: other bytes (another
/// sha256, another build to the hot swap), the same code.
pub fn rebuilt_component(wasm: &[u8], note: &str) -> Vec<u8> {
    let name = b"flowlink-test-build";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(note.as_bytes());
    assert!(body.len() < 128, "one-byte LEB128 size");
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

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

/// The sources cargo compiled an artifact from, by its dep-info file
/// (`NAME.d` beside it): exactly the inputs, so neither a file outside the
/// build nor a test-only module counts.
fn sources_of(dep_info: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(dep_info).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — run `scripts/test` (it builds first)",
            dep_info.display()
        )
    });
    let first = text.lines().next().unwrap_or_default();
    let deps = first.split_once(": ").map_or("", |(_, deps)| deps);
    // Paths are space-separated, a space inside one escaped as "\ ".
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => current.push(chars.next().unwrap()),
            ' ' => paths.push(PathBuf::from(std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    paths.push(PathBuf::from(current));
    paths.retain(|p| !p.as_os_str().is_empty());
    paths
}

/// Refuses to test a build older than its sources: a stale binary or
/// plugin would pass or fail for the wrong reason.
fn must_be_fresh(built: PathBuf, dep_info: &Path, what: &str) -> PathBuf {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built_at = modified(&built).unwrap_or(SystemTime::UNIX_EPOCH);
    let newest = sources_of(dep_info)
        .into_iter()
        .filter_map(|source| Some((modified(&source)?, source)))
        .max();
    if let Some((newest, source)) = newest {
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

/// Where `scripts/build-plugins` builds components.
fn plugin_build_dir() -> PathBuf {
    target_dir().join("wasm32-wasip2").join("plugin")
}

/// The cargo profile folder this test binary was built into
/// (`target/release` under `scripts/test`): the daemon it drives is the one
/// built with the same profile.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or_else(|| "release".into(), |name| name.to_os_string());
    target_dir().join(profile)
}

/// The cargo profile of this test build (`release` or `dev`), for scripts
/// that package or run the build already made.
pub fn cargo_profile() -> String {
    match profile_dir().file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".into(),
        Some(other) => other.into(),
        None => "release".into(),
    }
}

/// The `flowlink` binary: `$FLOWLINK_BIN`, else the build of the same cargo
/// profile as this test, checked to be newer than its sources (and the
/// emulator beside it, which `flowlink pce-emulator` runs).
pub fn flowlink_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("FLOWLINK_BIN") {
                return must_exist(PathBuf::from(bin), "FLOWLINK_BIN");
            }
            let profile = profile_dir();
            let emulator = must_exist(
                profile.join("flowlink-pce-emulator"),
                "the flowlink-pce-emulator binary",
            );
            must_be_fresh(
                emulator,
                &profile.join("flowlink-pce-emulator.d"),
                "the PCE emulator",
            );
            let bin = must_exist(profile.join("flowlink"), "the flowlink binary");
            must_be_fresh(bin, &profile.join("flowlink.d"), "the flowlink binary")
        })
        .clone()
}

/// Checks every component in `dir` against the sources of the cargo
/// package it was copied from (`scripts/build-plugins` names the copies).
fn fresh_plugins(dir: PathBuf, packages: &[(&str, &str)]) -> PathBuf {
    for (file, package) in packages {
        must_be_fresh(
            must_exist(dir.join(file), file),
            &plugin_build_dir().join(format!("{package}.d")),
            &format!("{}/{file}", dir.display()),
        );
    }
    dir
}

/// One compiled-plugin cache for every daemon a test binary starts through
/// `DaemonConfig`: each component is compiled once per binary instead of once
/// per daemon (about a CPU-second each, most of the suite's CPU otherwise).
/// The cache is keyed by the component's hash, so a test that swaps in other
/// bytes still compiles them; `plugin_loading` tests the cache itself.
pub fn shared_plugin_cache() -> PathBuf {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| temp_dir("plugin-cache")).clone()
}

/// First-party plugins (`scripts/build-plugins` puts them there).
pub fn plugin_dir() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let dir = must_exist(
                repo_root().join("build").join("plugins"),
                "the plugin directory",
            );
            fresh_plugins(
                dir,
                &[
                    ("netflow.wasm", "flowlink_plugin_netflow"),
                    ("ipfix.wasm", "flowlink_plugin_ipfix"),
                    ("sflow.wasm", "flowlink_plugin_sflow"),
                    ("vpc-flow.wasm", "flowlink_plugin_vpc_flow"),
                    ("text.wasm", "flowlink_plugin_text"),
                ],
            )
        })
        .clone()
}

/// Test-only plugins: the hostile one (and its build with a TCP probe), a
/// component of another contract major, one of contract 1.0.0.
pub fn test_plugin_dir() -> PathBuf {
    let dir = must_exist(
        repo_root().join("build").join("test-plugins"),
        "the test plugin directory",
    );
    fresh_plugins(
        dir,
        &[
            ("hostile.wasm", "flowlink_test_hostile_plugin"),
            ("hostile-net.wasm", "flowlink_test_hostile_plugin"),
            ("wit-major-2.wasm", "flowlink_test_wit_major_plugin"),
            ("contract-1.0.wasm", "flowlink_test_contract_1_0_plugin"),
        ],
    )
}

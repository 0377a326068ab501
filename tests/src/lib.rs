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

use std::path::PathBuf;

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

/// The `flowlink` binary: `$FLOWLINK_BIN`, else the cargo target directory's debug build.
pub fn flowlink_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLOWLINK_BIN") {
        return must_exist(PathBuf::from(bin), "FLOWLINK_BIN");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    must_exist(target.join("debug").join("flowlink"), "the flowlink binary")
}

/// First-party plugins (`scripts/build-plugins` puts them there).
pub fn plugin_dir() -> PathBuf {
    must_exist(
        repo_root().join("build").join("plugins"),
        "the plugin directory",
    )
}

/// Test-only plugins (the hostile one).
pub fn test_plugin_dir() -> PathBuf {
    must_exist(
        repo_root().join("build").join("test-plugins"),
        "the test plugin directory",
    )
}

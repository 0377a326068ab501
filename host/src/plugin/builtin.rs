//! Where the first-party plugins that ship with flowlink are found, so a
//! configuration without `plugin_dir` (every FlowLink configuration) runs
//! from any working directory.
//!
//! Lookup order, first folder holding a `.wasm` wins:
//! 1. `$FLOWLINK_BUILTIN_PLUGINS`, for packagers and unusual layouts;
//! 2. beside the executable: `<bin>/plugins`, then `<bin>/../lib/flowlink/plugins`
//!    (what a package installs: `/usr/bin/flowlink`, `/usr/lib/flowlink/plugins/`);
//! 3. the source tree the binary was built from, `build/plugins/`
//!    (`scripts/build-plugins` puts them there), for a build run in place.
//!
//! A configured `plugin_dir` is loaded after these and overrides them by
//! plugin name; only it is watched for hot swap.

use std::path::{Path, PathBuf};

/// The environment variable that names the built-in plugin folder.
const BUILTIN_PLUGINS_ENV: &str = "FLOWLINK_BUILTIN_PLUGINS";

/// The folders searched, in order (whether or not they exist).
pub fn builtin_plugin_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os(BUILTIN_PLUGINS_ENV) {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        candidates.push(bin.join("plugins"));
        candidates.push(bin.join("../lib/flowlink/plugins"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins"));
    candidates
}

/// The first candidate folder that holds a plugin, if any.
pub fn builtin_plugin_dir() -> Option<PathBuf> {
    builtin_plugin_candidates()
        .into_iter()
        .find(|dir| has_plugins(dir))
        .map(|dir| dir.canonicalize().unwrap_or(dir))
}

fn has_plugins(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|ext| ext == "wasm"))
    })
}

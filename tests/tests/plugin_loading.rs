//! Plugin discovery and the compiled-code cache, through the real binary.

use std::process::Command;

use flowlink_e2e::{flowlink_bin, plugin_dir, temp_dir};

fn plugins(dir: &std::path::Path, cache_home: &std::path::Path) -> std::process::Output {
    Command::new(flowlink_bin())
        .args(["plugins", "--plugin-dir"])
        .arg(dir)
        .env("XDG_CACHE_HOME", cache_home)
        .output()
        .unwrap()
}

#[test]
fn plugins_are_listed_by_their_own_name_and_cached_compiled() {
    let cache = temp_dir("plugin-cache");
    let out = plugins(&plugin_dir(), &cache);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("netflow\t")),
        "{listing}"
    );

    let cached: Vec<_> = std::fs::read_dir(cache.join("flowlink/plugins"))
        .expect("cache directory created")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert!(!cached.is_empty(), "a .cwasm was written");

    let again = plugins(&plugin_dir(), &cache);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains("cached=true"),
        "second load comes from the cache: {log}"
    );
}

#[test]
fn a_broken_plugin_file_is_skipped_with_its_name_and_the_rest_load() {
    let dir = temp_dir("broken-plugin");
    std::fs::copy(plugin_dir().join("netflow.wasm"), dir.join("netflow.wasm")).unwrap();
    std::fs::write(dir.join("broken.wasm"), b"\0asm garbage").unwrap();
    let out = plugins(&dir, &temp_dir("broken-plugin-cache"));
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("skipping plugin") && log.contains("broken.wasm"),
        "{log}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("netflow\t"));
}

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

/// `sha256sum FILE`: the digest from coreutils, not from flowlink.
fn sha256sum(file: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_pinned_consumer_runs_only_the_build_it_pins() {
    use flowlink_e2e::{
        Daemon, DaemonConfig, Emulator, free_udp_port, install_plugin, rebuilt_component, wait_for,
    };
    use std::time::Duration;

    let emulator = Emulator::start();
    let dir = temp_dir("pinned");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let original = std::fs::read(plugin_dir().join("netflow.wasm")).unwrap();
    std::fs::write(plugins.join("netflow.wasm"), &original).unwrap();
    let digest = sha256sum(&plugins.join("netflow.wasm"));
    let config = |pin: &str| {
        DaemonConfig::new(&emulator, "pinned", "netflow")
            .udp(free_udp_port())
            .plugin_dir(&plugins)
            .parser_with(&format!("sha256: {pin}"))
            .yaml()
    };

    // Another digest: refused at start, both digests named.
    let wrong = "0".repeat(64);
    std::fs::write(dir.join("wrong.yaml"), config(&wrong)).unwrap();
    let out = Command::new(flowlink_bin())
        .args(["check-config", "--config"])
        .arg(dir.join("wrong.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("consumers[0].parser.sha256"), "{err}");
    assert!(err.contains(&wrong) && err.contains(&digest), "{err}");

    // Its own digest (upper case is fine): runs; a new build is not swapped in.
    let mut daemon = Daemon::start_in(&dir, &config(&digest.to_uppercase()));
    install_plugin(
        &plugins,
        "netflow.wasm",
        &rebuilt_component(&original, "build 2"),
    );
    let refused = wait_for(Duration::from_secs(30), || {
        let log = daemon.log();
        log.lines()
            .find(|l| l.contains("not swapped in") && l.contains("pinned"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("{}", daemon.log()));
    assert!(refused.contains(&digest), "{refused}");
    assert!(
        !daemon.log().contains("swapped in a new plugin build"),
        "{}",
        daemon.log()
    );
    assert!(daemon.terminate().success());
}

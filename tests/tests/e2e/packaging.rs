//! The Debian package: `scripts/package` builds it with cargo-deb from the
//! build already made; unpacked into a temp root, its binary runs on its
//! example configuration (only the PCE address, key file, data directory
//! and ports changed) with its own built-in plugins, tells the service
//! manager it is ready, and delivers softflowd's capture exactly; systemd
//! accepts its unit.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flowlink_e2e::process::{EMULATOR_KEY, EMULATOR_SECRET};
use flowlink_e2e::{
    Daemon, Emulator, cargo_profile, expected_aggregation, free_tcp_port, free_udp_port,
    read_flows_csv, repo_root, scrape, send_capture, temp_dir, wait_for,
};

fn build_package(out: &Path) -> PathBuf {
    let status = Command::new(repo_root().join("scripts/package"))
        .arg(out)
        .env("PROFILE", cargo_profile())
        .status()
        .expect("running scripts/package");
    assert!(status.success(), "scripts/package failed");
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb expected in {out:?}: {debs:?}");
    debs[0].clone()
}

/// `text` with `line` (which starts with `key:`) replaced; the key must be there.
fn replace_key(text: &str, key: &str, line: &str) -> String {
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key}:")) {
                found = true;
                line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(found, "the packaged config has no {key:?}");
    out.join("\n") + "\n"
}

#[test]
fn the_package_installs_a_service_that_runs() {
    let dir = temp_dir("package");
    let deb = build_package(&dir.join("out"));
    let root = dir.join("root");
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap();
    assert!(unpacked.success());
    for file in [
        "usr/bin/flowlink",
        "usr/lib/flowlink/plugins/netflow.wasm",
        "usr/lib/flowlink/plugins/ipfix.wasm",
        "usr/lib/flowlink/plugins/sflow.wasm",
        "etc/flowlink/flowlink.yaml",
        "usr/share/flowlink/flowlink_config_schema.json",
        "usr/lib/systemd/system/flowlink.service",
    ] {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    // Upgrades keep an edited configuration.
    let conffiles = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains("/etc/flowlink/flowlink.yaml"),
        "the example config is not a conffile"
    );

    // systemd accepts the unit; its ExecStart points into the temp root so
    // the check that the binary is executable is made on the packaged one.
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/flowlink.service")).unwrap();
    for directive in [
        "Type=notify",
        "Restart=on-failure",
        "User=flowlink",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/flowlink",
    ] {
        assert!(
            unit.lines().any(|l| l == directive),
            "unit lacks {directive}"
        );
    }
    let bin = root.join("usr/bin/flowlink");
    let unit_dir = dir.join("unit");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let local_unit = unit_dir.join("flowlink.service");
    std::fs::write(
        &local_unit,
        unit.replace("/usr/bin/flowlink", bin.to_str().unwrap()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local_unit)
        .output()
        .expect("systemd-analyze (scripts/install-peers installs systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The packaged example, pointed at the emulator and a temp directory.
    let emulator = Emulator::start();
    let port = free_udp_port();
    let key_file = dir.join("api_key");
    std::fs::write(&key_file, format!("{EMULATOR_KEY}:{EMULATOR_SECRET}\n")).unwrap();
    let mut config = std::fs::read_to_string(root.join("etc/flowlink/flowlink.yaml")).unwrap();
    config = replace_key(&config, "pce_addr", &format!("pce_addr: {}", emulator.url));
    config = replace_key(
        &config,
        "api_key",
        &format!("api_key: $cat {}", key_file.display()),
    );
    config = replace_key(&config, "data_directory", "data_directory: data");
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    config = replace_key(
        &config,
        "metrics_listen",
        &format!("metrics_listen: {metrics}"),
    );
    for (from, to) in [
        ("\"2055\"", port.to_string()),
        ("\"4739\"", free_udp_port().to_string()),
        ("\"6343\"", free_udp_port().to_string()),
    ] {
        assert!(
            config.contains(from),
            "the packaged config has no port {from}"
        );
        config = config.replace(from, &format!("\"{to}\""));
    }
    let config_file = dir.join("flowlink.yaml");
    std::fs::write(&config_file, &config).unwrap();

    // The built-in plugins are the package's, found beside its binary.
    let check = Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&config_file)
        .env_remove("FLOWLINK_BUILTIN_PLUGINS")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let plugins = root.join("usr/lib/flowlink/plugins");
    assert!(
        said.lines()
            .filter(|l| l.trim_start().starts_with("parser "))
            .all(|l| l.contains(plugins.to_str().unwrap())),
        "plugins not taken from the package:\n{said}"
    );

    // Readiness reaches the service manager's socket.
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut daemon = Daemon::start_binary(
        &bin,
        &dir,
        &config_file,
        None,
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("no READY=1 from the daemon");
    let state = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(state.lines().any(|l| l == "READY=1"), "{state:?}");

    send_capture("softflowd_v5", port);
    // The packaged window is 10 minutes: the stop delivers it, once every
    // record is in the window.
    let csv = read_flows_csv("softflowd_v5");
    let aggregated = wait_for(Duration::from_secs(30), || {
        let m = scrape(&metrics);
        (m.get("flowlink_flows_aggregated_total{consumer=\"netflow\"}")
            == Some(&(csv.len() as u64)))
        .then_some(())
    });
    assert!(
        aggregated.is_some(),
        "{:?}\n{}",
        scrape(&metrics),
        daemon.log()
    );
    assert!(daemon.terminate().success(), "{}", daemon.log());
    assert_eq!(
        emulator.totals(),
        expected_aggregation(&csv),
        "{}",
        daemon.log()
    );
    let n = notify
        .recv(&mut buf)
        .expect("no STOPPING=1 from the daemon");
    let state = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(state.lines().any(|l| l == "STOPPING=1"), "{state:?}");
}

//! The plugin platform as an outsider meets it: `flowlink plugin new` in an
//! empty folder outside the repository, the project's own tests, `flowlink
//! plugin build`, `flowlink plugin check` on its sample, then the component
//! dropped into a running daemon's plugin_dir and put to work by a SIGHUP:
//! its flows reach the PCE. Expected values come from the sample file
//! itself, split here by the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, flowlink_bin, free_udp_port, plugin_dir, temp_dir, wait_for,
};

/// `flowlink ARGS` in `cwd`, building into `target` (never the suite's own
/// target directory: `cargo test` holds its lock while tests run).
fn flowlink_in(cwd: &Path, target: &Path, args: &[&str]) -> std::process::Output {
    Command::new(flowlink_bin())
        .args(args)
        .current_dir(cwd)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("running flowlink")
}

/// `build/python-plugins`: scripts/build-plugins builds the Python parser
/// there with componentize-py.
fn python_plugin_dir() -> PathBuf {
    let dir = flowlink_e2e::repo_root().join("build/python-plugins");
    let built = std::fs::metadata(dir.join("pipe-log-py.wasm"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}/pipe-log-py.wasm: {e}: run scripts/build-plugins",
                dir.display()
            )
        });
    for source in ["app.py", "parser.py"] {
        let path = flowlink_e2e::repo_root()
            .join("plugins/python-pipe-log")
            .join(source);
        let changed = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(
            built >= changed,
            "{} is newer than its build: run scripts/build-plugins",
            path.display()
        );
    }
    dir
}

/// Where plugin projects of the tests build: kept between runs (speed only).
fn project_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/plugin-projects
    exe.ancestors()
        .nth(3)
        .map_or_else(|| temp_dir("plugin-target"), |t| t.join("plugin-projects"))
}

/// Per `(src, dst, dst_port, protocol)`: `(packets, bytes)`, from the
/// sample's lines (`time|action|protocol|src|sport|dst|dport|packets|bytes`).
type Expected = std::collections::BTreeMap<(String, String, u16, u8), (u64, u64)>;

fn expected_from_sample(sample: &str) -> Expected {
    let mut expected = Expected::new();
    for line in sample.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 9, "{line}");
        let protocol = match f[2] {
            "tcp" => 6,
            "udp" => 17,
            other => panic!("sample protocol {other}"),
        };
        let entry = expected
            .entry((
                f[3].to_owned(),
                f[5].to_owned(),
                f[6].parse().unwrap(),
                protocol,
            ))
            .or_default();
        entry.0 += f[7].parse::<u64>().unwrap();
        entry.1 += f[8].parse::<u64>().unwrap();
    }
    expected
}

/// Waits until the PCE holds exactly `expected` (packets and bytes per key).
fn wait_for_the_pce(emulator: &Emulator, expected: &Expected, daemon: &Daemon) {
    let delivered = wait_for(Duration::from_secs(30), || {
        let got: Expected = emulator
            .totals()
            .into_iter()
            .map(|(key, (_, packets, bytes))| (key, (packets, bytes)))
            .collect();
        (&got == expected).then_some(())
    });
    assert!(
        delivered.is_some(),
        "the PCE holds {:?}, expected {expected:?}\n{}",
        emulator.totals(),
        daemon.log()
    );
}

#[test]
fn a_plugin_written_outside_the_repository_runs_in_a_daemon() {
    let home = temp_dir("plugin-sdk");
    assert!(!home.starts_with(flowlink_e2e::repo_root()));
    let target = project_target_dir();

    let out = flowlink_in(
        &home,
        &target,
        &["plugin", "new", "pipe-log", "--kind", "text"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = home.join("pipe-log");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        project.to_str().unwrap()
    );
    let sample_text = std::fs::read_to_string(project.join("samples/sample.log")).unwrap();
    let expected = expected_from_sample(&sample_text);

    // The project's own tests, natively, with the SDK it was given.
    let tested = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        tested.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    let built = flowlink_in(&project, &target, &["plugin", "build"]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim());
    assert!(
        wasm.is_file() && wasm.extension().is_some_and(|e| e == "wasm"),
        "{wasm:?}"
    );

    let checked = flowlink_in(
        &project,
        &target,
        &[
            "plugin",
            "check",
            wasm.to_str().unwrap(),
            "--sample",
            "samples/sample.log",
        ],
    );
    let report = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{report}");
    assert!(report.contains("parser     pipe-log 0.1.0"), "{report}");
    assert!(
        report.contains("contract   flowlink:parser@1.1.0"),
        "{report}"
    );
    // The SDK exports the packed input: the host uses it.
    assert!(
        report.contains("calls      packed-input.parse-packed"),
        "{report}"
    );
    assert!(report.contains("µs per message"), "{report}");
    let mut seen = Expected::new();
    for line in String::from_utf8_lossy(&checked.stdout).lines() {
        let flow: serde_json::Value = serde_json::from_str(line).unwrap();
        let entry = seen
            .entry((
                flow["src_addr"].as_str().unwrap().to_owned(),
                flow["dst_addr"].as_str().unwrap().to_owned(),
                flow["dst_port"].as_u64().unwrap() as u16,
                flow["protocol"].as_u64().unwrap() as u8,
            ))
            .or_default();
        entry.0 += flow["packets"].as_u64().unwrap();
        entry.1 += flow["bytes"].as_u64().unwrap();
    }
    assert_eq!(seen, expected, "plugin check's flows");

    // A running daemon (NetFlow only) takes the component from its plugin_dir…
    let emulator = Emulator::start();
    let dir = temp_dir("plugin-sdk-daemon");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        plugin_dir().join("netflow.wasm"),
        plugins.join("netflow.wasm"),
    )
    .unwrap();
    let config = DaemonConfig::new(&emulator, "netflow", "netflow")
        .udp(free_udp_port())
        .plugin_dir(&plugins)
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    // Deployed as documented: written under a temporary name, then renamed.
    flowlink_e2e::install_plugin(&plugins, "pipe-log.wasm", &std::fs::read(&wasm).unwrap());
    assert!(
        wait_for(Duration::from_secs(60), || {
            let log = daemon.log();
            (log.contains("swapped in a new plugin build") && log.contains("pipe-log"))
                .then_some(())
        })
        .is_some(),
        "{}",
        daemon.log()
    );

    // …and a consumer added by SIGHUP parses with it.
    let port = free_udp_port();
    let with_fw = format!(
        "{config}  - name: fw\n    connectors:\n      - {{ type: udp, properties: {{ ports: \"{port}\", listen_address: 127.0.0.1 }} }}\n    parser:\n      type: pipe-log\n"
    );
    std::fs::write(dir.join("flowlink.yaml"), with_fw).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("SIGHUP: configuration reloaded: added \"fw\"", 1);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(sample_text.as_bytes(), ("127.0.0.1", port))
        .unwrap();

    wait_for_the_pce(&emulator, &expected, &daemon);
    assert!(daemon.terminate().success());
}

#[test]
fn a_build_that_breaks_the_contract_or_the_sandbox_is_refused_by_name() {
    let target = project_target_dir();
    let here = temp_dir("plugin-refused");
    let test_plugins = flowlink_e2e::test_plugin_dir();

    // Another major of the contract: both versions named.
    let out = flowlink_in(
        &here,
        &target,
        &[
            "plugin",
            "check",
            test_plugins.join("wit-major-2.wasm").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("flowlink:parser@2.0.0"), "{err}");
    assert!(err.contains("flowlink:parser@1.1.0"), "{err}");

    // An import the sandbox does not grant: named.
    let out = flowlink_in(
        &here,
        &target,
        &[
            "plugin",
            "check",
            test_plugins.join("hostile-net.wasm").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not grant: wasi:sockets/"), "{err}");

    // The binary kind builds and decodes its sample: 29-byte records after
    // the magic, read here from the layout its README states.
    let out = flowlink_in(
        &here,
        &target,
        &["plugin", "new", "flx", "--kind", "binary"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = here.join("flx");
    let sample = std::fs::read(project.join("samples/sample.bin")).unwrap();
    let records: Vec<&[u8]> = sample[4..].chunks(29).collect();
    assert_eq!(&sample[..4], b"FLX1");
    let built = flowlink_in(&project, &target, &["plugin", "build"]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = String::from_utf8_lossy(&built.stdout).trim().to_owned();
    let checked = flowlink_in(
        &project,
        &target,
        &["plugin", "check", &wasm, "--sample", "samples/sample.bin"],
    );
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let flows: Vec<serde_json::Value> = String::from_utf8_lossy(&checked.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flows.len(), records.len());
    for (flow, r) in flows.iter().zip(&records) {
        let src = std::net::Ipv4Addr::new(r[0], r[1], r[2], r[3]).to_string();
        assert_eq!(flow["src_addr"], src.as_str());
        assert_eq!(flow["dst_port"], u16::from_be_bytes([r[10], r[11]]));
        assert_eq!(flow["protocol"], r[12]);
        assert_eq!(
            flow["bytes"],
            u64::from_be_bytes(r[17..25].try_into().unwrap())
        );
    }

    // The same project broken: the build says so and reports no component.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let broken = source.replace("Ok(())\n    }\n}", "Ok(()) +\n    }\n}");
    assert_ne!(broken, source, "the template changed: break it another way");
    std::fs::write(&lib, broken).unwrap();
    let out = flowlink_in(&project, &target, &["plugin", "build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("error") && err.contains("the build of"),
        "{err}"
    );
}

#[test]
fn a_parser_written_in_python_runs_in_the_daemon() {
    // Built by scripts/build-plugins with componentize-py against wit/parser.wit.
    let plugin = python_plugin_dir().join("pipe-log-py.wasm");
    assert!(
        plugin.is_file(),
        "{} missing: scripts/build-plugins builds it (componentize-py from scripts/install-peers)",
        plugin.display()
    );
    let sample = std::fs::read_to_string(
        flowlink_e2e::repo_root().join("host/src/cli/plugin/template/text/sample.log"),
    )
    .unwrap();
    let expected = expected_from_sample(&sample);
    let emulator = Emulator::start();
    let dir = temp_dir("python-plugin");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&plugin, plugins.join("pipe-log-py.wasm")).unwrap();
    let port = free_udp_port();
    // Compiling an interpreter takes a while: the compiled code is kept
    // between runs of the suite.
    let cache = project_target_dir().join("python-plugin-cache");
    let config = DaemonConfig::new(&emulator, "py", "pipe-log-py")
        .udp(port)
        .plugin_dir(&plugins)
        .plugin_cache_dir(&cache)
        .yaml();
    let mut daemon = Daemon::start_in(&dir, &config);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(sample.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    socket
        .send_to(
            b"1|allow|tcp|not-an-address|1|10.0.0.1|2|3|4\n",
            ("127.0.0.1", port),
        )
        .unwrap();
    wait_for_the_pce(&emulator, &expected, &daemon);
    daemon.wait_log("record rejected", 1);
    assert!(daemon.terminate().success());
}

#[test]
fn a_component_built_against_a_newer_minor_of_the_contract_is_taken() {
    // scripts/build-plugins builds the Python parser against a copy of the
    // WIT at 1.2.0 with one function added, which this host never calls.
    let plugin = python_plugin_dir().join("contract-1.2/pipe-log-py.wasm");
    assert!(
        plugin.is_file(),
        "{} missing: scripts/build-plugins",
        plugin.display()
    );
    let sample = flowlink_e2e::repo_root().join("host/src/cli/plugin/template/text/sample.log");
    let out = flowlink_in(
        &temp_dir("newer-minor"),
        &project_target_dir(),
        &[
            "plugin",
            "check",
            plugin.to_str().unwrap(),
            "--sample",
            sample.to_str().unwrap(),
        ],
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("contract   flowlink:parser@1.2.0 (this flowlink: 1.1.0)"),
        "{report}"
    );
    let flows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = expected_from_sample(&std::fs::read_to_string(&sample).unwrap());
    assert_eq!(flows.len(), expected.len());
}

#[test]
fn a_component_of_the_first_contract_minor_parses_through_the_message_list() {
    // The sFlow decoder built against flowlink:parser@1.0.0 as released (a
    // frozen copy of that WIT): no packed input, so the host hands it lists
    // of messages. Expected records: tshark's.
    let plugin = flowlink_e2e::test_plugin_dir().join("contract-1.0.wasm");
    let job = "pmacct_sfprobe_rate1";
    let samples = flowlink_e2e::datagram_files(job);
    let mut args = vec!["plugin".to_owned(), "check".to_owned(), path_arg(&plugin)];
    for file in &samples {
        args.extend(["--sample".to_owned(), path_arg(file)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = flowlink_in(&temp_dir("contract-1.0"), &project_target_dir(), &args);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("contract   flowlink:parser@1.0.0 (this flowlink: 1.1.0)"),
        "{report}"
    );
    assert!(report.contains("calls      session.parse"), "{report}");
    let flows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let csv = flowlink_e2e::read_flows_csv(job);
    assert_eq!(flows.len(), csv.len(), "tshark's sample count");
    for (i, (flow, want)) in flows.iter().zip(&csv).enumerate() {
        assert_eq!(flowlink_e2e::json_tuple(flow), want.tuple(), "sample {i}");
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

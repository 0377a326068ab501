//! The daemon and the PCE emulator as real child processes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fixtures::{KeyTotals, TrafficKey};

/// Totals per traffic key, as the emulator or a fixture gives them.
pub type Totals = BTreeMap<TrafficKey, KeyTotals>;
use super::flowlink_bin;

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to a minute) until the emulator's totals are `expected`;
/// else panics with what differs and the daemon's log.
pub fn assert_totals(emulator: &Emulator, daemon: &Daemon, expected: &Totals, what: &str) {
    let arrived = wait_for(Duration::from_secs(60), || {
        (emulator.totals() == *expected).then_some(())
    });
    if arrived.is_none() {
        let got = emulator.totals();
        let differing: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .take(5)
            .collect();
        let unexpected: Vec<_> = got
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .take(5)
            .collect();
        panic!(
            "{what}: {} keys expected, {} received; differing {differing:?}; unexpected {unexpected:?}\n{}",
            expected.len(),
            got.len(),
            daemon.log()
        );
    }
}

/// Collects a child's stderr lines in the background.
fn capture_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    capture_lines_until_eof(stream).0
}

/// [`capture_lines`], with the reader thread: it ends at the stream's end,
/// so once it has, the lines hold everything the child wrote.
fn capture_lines_until_eof(
    stream: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

/// The tests' HTTP client. It does not check certificates: it only talks
/// to the emulator, whose HTTPS mode uses a throwaway self-signed one.
fn http() -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .build()
        .new_agent()
}

pub const EMULATOR_KEY: &str = "e2e-key";
pub const EMULATOR_SECRET: &str = "e2e-secret";

/// `flowlink pce-emulator` on a free loopback port.
pub struct Emulator {
    child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Emulator {
    pub fn start() -> Emulator {
        Emulator::start_with(&["--listen", "127.0.0.1:0"])
    }

    /// HTTPS with a fresh self-signed certificate for localhost, written
    /// to `cert` (PEM); returns it and the port a `pce_addr: localhost:PORT`
    /// reaches it on.
    pub fn start_https(cert: &Path) -> (Emulator, String) {
        let emulator = Emulator::start_with(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert-out",
            cert.to_str().unwrap(),
        ]);
        assert!(emulator.url.starts_with("https://"), "{}", emulator.url);
        let port = emulator.url.rsplit(':').next().unwrap().to_owned();
        (emulator, port)
    }

    /// With extra `pce-emulator` arguments (`--listen`, `--state-file`, `--fault` …).
    pub fn start_with(args: &[&str]) -> Emulator {
        let mut child = Command::new(flowlink_bin())
            .arg("pce-emulator")
            .args(args)
            .arg("--api-key")
            .arg(format!("{EMULATOR_KEY}:{EMULATOR_SECRET}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the PCE emulator");
        let stderr = capture_lines(child.stderr.take().unwrap());
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "emulator did not say where it listens: {first:?} {:?}",
                    stderr.lock().unwrap()
                )
            });
        Emulator {
            url: url.to_owned(),
            child,
            stderr,
        }
    }

    /// `GET /emulator/flows`.
    pub fn received(&self) -> Value {
        let body = http()
            .get(&format!("{}/emulator/flows", self.url))
            .call()
            .expect("querying the emulator")
            .into_body()
            .with_config()
            // A window of a hundred thousand keys is ~20 MB of JSON.
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// `POST /emulator/fault`: e.g. `{"mode": "too_many_requests", "retry_after_seconds": 3}`.
    pub fn set_fault(&self, fault: serde_json::Value) {
        http()
            .post(&format!("{}/emulator/fault", self.url))
            .header("Content-Type", "application/json")
            .send(fault.to_string())
            .expect("setting the emulator fault");
    }

    /// `GET /emulator/requests`: every upload request with its answer.
    pub fn requests(&self) -> Vec<Value> {
        let body = http()
            .get(&format!("{}/emulator/requests", self.url))
            .call()
            .expect("querying the emulator")
            .into_body()
            .read_to_string()
            .unwrap();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        parsed["requests"].as_array().unwrap().clone()
    }

    /// Totals per `(src, dst, dst_port, protocol)`: `(connections, packets, bytes)`.
    pub fn totals(&self) -> Totals {
        let received = self.received();
        let mut totals = BTreeMap::new();
        for f in received["flows"].as_array().unwrap() {
            let key = (
                f["src"].as_str().unwrap().to_owned(),
                f["dst"].as_str().unwrap().to_owned(),
                f["dst_port"].as_u64().unwrap() as u16,
                f["protocol"].as_u64().unwrap() as u8,
            );
            let t = totals.entry(key).or_insert((0, 0, 0));
            t.0 += f["connections"].as_u64().unwrap();
            t.1 += f["packets"].as_u64().unwrap();
            t.2 += f["bytes"].as_u64().unwrap();
        }
        totals
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `topic/partition` words of a rebalance log line's list (the
/// fields after it are `key=value`).
fn partitions_named(list: &str) -> Vec<String> {
    list.split_whitespace()
        .take_while(|w| !w.contains('='))
        .map(str::to_owned)
        .collect()
}

/// `flowlink run` with a config written to a fresh temporary directory.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The thread reading stderr: `terminate`, `wait_exit` and `kill` wait
    /// for it to reach the end, so `log()` after an exit holds every line
    /// (the test thread can outrun the reader).
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// Resident memory of process `pid`, KiB (`VmRSS`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_dead_runs);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flowlink-e2e-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the directories of earlier test runs whose process is gone.
/// A run keeps its own (a failed test's data and logs stay to be read)
/// until the next run, so the suite does not fill /tmp run after run.
fn sweep_dead_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("flowlink-e2e-")) else {
            continue;
        };
        // NAME-PID-SEQ, NAME may hold dashes.
        let mut parts = rest.rsplitn(3, '-');
        let (Some(_seq), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Daemon {
    /// Writes `config_yaml` to `DIR/flowlink.yaml` and starts the daemon;
    /// returns once it logs that it is running.
    pub fn start(name: &str, config_yaml: &str) -> Daemon {
        Daemon::start_in(&temp_dir(name), config_yaml)
    }

    /// Like [`Daemon::start`] in a given directory: a restart keeps its
    /// `data_directory` (relative paths in the config are taken from it).
    pub fn start_in(dir: &Path, config_yaml: &str) -> Daemon {
        let dir = dir.to_owned();
        let config = dir.join("flowlink.yaml");
        std::fs::write(&config, config_yaml).unwrap();
        Daemon::start_config(&dir, &config, None, &[])
    }

    /// Runs `flowlink run --config CONFIG` from working directory `cwd`
    /// (default: the test's), with extra environment variables.
    pub fn start_config(
        dir: &Path,
        config: &Path,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Daemon {
        Daemon::start_binary(&flowlink_bin(), dir, config, cwd, env)
    }

    /// Like [`Daemon::start_config`] with another `flowlink` binary (a
    /// packaged one).
    pub fn start_binary(
        bin: &Path,
        dir: &Path,
        config: &Path,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut daemon = Daemon::spawn(bin, dir, config, cwd, env);
        // Until it runs or exits. The bound is generous: on a fresh machine
        // a daemon compiles its plugins cold (Cranelift; an interpreter
        // built with componentize-py alone takes a minute while other tests
        // share the cores), and a daemon that fails to start exits.
        let started = wait_for(Duration::from_secs(300), || {
            let running = daemon
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("flowlink running"));
            (running || !daemon.is_running()).then_some(running)
        });
        if started != Some(true) {
            daemon.read_log_to_the_end();
            panic!("daemon did not start:\n{}", daemon.log());
        }
        daemon
    }

    fn spawn(
        bin: &Path,
        dir: &Path,
        config: &Path,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut command = Command::new(bin);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command.envs(env.iter().copied());
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .env("FLOWLINK_LOG", "info,flowlink=debug")
            // For the CloudWatch tests against moto; no real account is reachable.
            .env("AWS_ACCESS_KEY_ID", "flowlink-test")
            .env("AWS_SECRET_ACCESS_KEY", "flowlink-test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting flowlink run");
        let (stderr, reader) = capture_lines_until_eof(child.stderr.take().unwrap());
        Daemon {
            child: Some(child),
            dir: dir.to_owned(),
            stderr,
            stderr_reader: Some(reader),
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// SIGKILL: no shutdown, no flush, as in a crash.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
        self.read_log_to_the_end();
    }

    /// How many partitions this daemon's Kafka connector holds, by its log:
    /// each assignment adds its partitions, each revocation takes its own
    /// away (eager or cooperative alike), a failed rebalance leaves none.
    pub fn kafka_partitions_held(&self) -> usize {
        let mut held = std::collections::BTreeSet::new();
        for line in self.stderr.lock().unwrap().iter() {
            if let Some((_, parts)) = line.split_once("kafka partitions assigned:") {
                held.extend(partitions_named(parts));
            } else if let Some((_, parts)) = line.split_once("kafka partitions revoked:") {
                for part in partitions_named(parts) {
                    held.remove(&part);
                }
            } else if line.contains("kafka rebalance failed") {
                held.clear();
            }
        }
        held.len()
    }

    /// After the exit: waits (up to 10 s) until every line the daemon wrote
    /// has been read.
    fn read_log_to_the_end(&mut self) {
        if let Some(reader) = self.stderr_reader.take()
            && wait_for(Duration::from_secs(10), || {
                reader.is_finished().then_some(())
            })
            .is_some()
        {
            let _ = reader.join();
        }
    }

    /// A Prometheus counter of this daemon (`metrics_listen` must be set);
    /// panics when it is not reported.
    pub fn metric(&self, metrics_addr: &str, name: &str) -> u64 {
        metric(metrics_addr, name)
    }

    /// Writes `config_yaml` to `DIR/flowlink.yaml` and spawns the daemon
    /// without waiting for it to run (for tests of the start-up itself).
    pub fn spawn_in(dir: &Path, config_yaml: &str) -> Daemon {
        let config = dir.join("flowlink.yaml");
        std::fs::write(&config, config_yaml).unwrap();
        Daemon::spawn(&flowlink_bin(), dir, &config, None, &[])
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits (up to 30 s) for the process to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let status = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("daemon did not exit within 30 s")
        });
        self.read_log_to_the_end();
        status
    }

    /// Waits (up to 30 s) until the log has `count` lines containing `text`.
    pub fn wait_log(&self, text: &str, count: usize) {
        let ok = wait_for(Duration::from_secs(30), || {
            (self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(text))
                .count()
                >= count)
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "{count}× {text:?} not in the log:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("daemon did not exit within 30 s of SIGTERM")
        });
        self.read_log_to_the_end();
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The offsets file connectors saved as their resume points in
/// `data_directory` (`checkpoints/*.json`).
fn saved_file_offsets(data_directory: &Path) -> Vec<u64> {
    let Ok(saved) = std::fs::read_dir(data_directory.join("checkpoints")) else {
        return Vec::new();
    };
    saved
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            v["offset"].as_u64()
        })
        .collect()
}

/// Waits (up to a minute) until a file connector's saved resume point in
/// `data_directory` is `offset`; panics with the daemon's log if not.
pub fn wait_file_resume_point(daemon: &Daemon, data_directory: &Path, offset: u64) {
    let reached = wait_for(Duration::from_secs(60), || {
        saved_file_offsets(data_directory)
            .contains(&offset)
            .then_some(())
    });
    assert!(
        reached.is_some(),
        "the file's resume point never reached {offset}:\n{}",
        daemon.log()
    );
}

/// A file connector's saved resume point in `data_directory` (the byte
/// offset it resumes at), 0 when none is saved yet.
pub fn file_resume_point(data_directory: &Path) -> u64 {
    saved_file_offsets(data_directory)
        .first()
        .copied()
        .unwrap_or(0)
}

/// The window checkpoints in `data_directory` (`windows/*.window`) by file
/// name, with the flow count from each file's spool header (magic
/// `FLSPOOL1`, then the count as a little-endian u32; docs/spool.md).
pub fn window_checkpoints(data_directory: &Path) -> BTreeMap<String, u32> {
    let Ok(entries) = std::fs::read_dir(data_directory.join("windows")) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "window"))
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            let count = (bytes.len() >= 12 && &bytes[..8] == b"FLSPOOL1")
                .then(|| u32::from_le_bytes(bytes[8..12].try_into().expect("4")))?;
            Some((e.file_name().to_string_lossy().into_owned(), count))
        })
        .collect()
}

/// Scrapes a Prometheus endpoint into `metric{labels} -> value`. Panics
/// when the endpoint does not answer or a line is not a metric: a read that
/// failed must fail the test, never pass as zeros.
pub fn scrape(metrics_addr: &str) -> BTreeMap<String, u64> {
    let response = ureq::get(&format!("http://{metrics_addr}/metrics"))
        .call()
        .unwrap_or_else(|e| panic!("metrics endpoint {metrics_addr}: {e}"));
    let body = response
        .into_body()
        .read_to_string()
        .unwrap_or_else(|e| panic!("metrics endpoint {metrics_addr}: {e}"));
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let parsed = l
                .rsplit_once(' ')
                .and_then(|(name, value)| Some((name.to_owned(), value.parse().ok()?)));
            parsed.unwrap_or_else(|| panic!("not a counter line from {metrics_addr}: {l:?}"))
        })
        .collect()
}

/// Waits (30 s at most) until metric `name` of the daemon equals `want`;
/// fails with what it is and the daemon's log.
pub fn wait_metric(daemon: &Daemon, metrics_addr: &str, name: &str, want: u64) {
    let reached = wait_for(Duration::from_secs(30), || {
        (metric(metrics_addr, name) == want).then_some(())
    });
    assert!(
        reached.is_some(),
        "{name} is {} not {want}\n{}",
        metric(metrics_addr, name),
        daemon.log()
    );
}

/// One metric of a scrape; panics (with what there was) when it is
/// missing, so a renamed metric cannot read as 0.
pub fn metric(metrics_addr: &str, name: &str) -> u64 {
    let all = scrape(metrics_addr);
    match all.get(name) {
        Some(value) => *value,
        None => panic!("no metric {name} at {metrics_addr}; have: {:?}", all.keys()),
    }
}

/// `flowlink decode --plugin PLUGIN FILES…` with the first-party plugin
/// directory: the JSON flows, and stderr. Panics if decode fails.
pub fn decode_json(plugin: &str, files: &[PathBuf]) -> (Vec<Value>, String) {
    let plugins = super::plugin_dir();
    let mut args = vec![
        "decode",
        "--plugin",
        plugin,
        "--plugin-dir",
        plugins.to_str().unwrap(),
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = run_flowlink(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "decode failed: {stderr}");
    let flows = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    (flows, stderr)
}

/// Runs `flowlink ARGS…` to completion.
pub fn run_flowlink(args: &[&str]) -> std::process::Output {
    Command::new(flowlink_bin())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "flowlink-test")
        .env("AWS_SECRET_ACCESS_KEY", "flowlink-test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running flowlink")
}

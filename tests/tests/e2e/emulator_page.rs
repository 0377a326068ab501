//! The emulator's page draws what it received as a traffic map: loaded in
//! headless Chromium (its script run), the drawing holds one edge per
//! received traffic key and a node per host, and the page fetches nothing
//! from elsewhere.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use flowlink_e2e::{
    Daemon, DaemonConfig, Emulator, free_udp_port, send_capture, temp_dir, wait_for,
};

/// `name="value"` attributes of `tag` elements of class `class`, in the
/// serialized DOM Chromium prints.
fn elements<'a>(dom: &'a str, class: &str) -> Vec<&'a str> {
    let open = format!("class=\"{class}\"");
    dom.split('<')
        .filter(|tag| tag.starts_with("g ") && tag.contains(&open))
        .collect()
}

fn attribute(tag: &str, name: &str) -> String {
    let start = tag
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in <{tag}"))
        + name.len()
        + 3;
    let end = start + tag[start..].find('"').unwrap();
    tag[start..end].to_owned()
}

#[test]
fn the_page_draws_every_received_key() {
    let emulator = Emulator::start();
    let port = free_udp_port();
    let _daemon = Daemon::start(
        "page",
        &DaemonConfig::new(&emulator, "page", "netflow")
            .udp(port)
            .yaml(),
    );
    send_capture("softflowd_v5", port);
    // Until a window with them arrived and the next one added nothing.
    let mut last = 0;
    let settled = wait_for(Duration::from_secs(30), || {
        let n = emulator.totals().len();
        let done = n > 0 && n == last;
        last = n;
        done.then_some(())
    });
    assert!(settled.is_some());
    let totals = emulator.totals();

    let page = ureq_get(&format!("{}/", emulator.url));
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(external), "the page loads {external}…");
    }

    let dir = temp_dir("page-chromium");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", dir.display()))
        .arg("--dump-dom")
        .arg(format!("{}/", emulator.url))
        .output()
        .expect("chromium (scripts/install-peers installs Debian's chromium)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();

    let drawn: BTreeSet<(String, String, u16, u8)> = elements(&dom, "edge")
        .into_iter()
        .map(|tag| {
            (
                attribute(tag, "data-src"),
                attribute(tag, "data-dst"),
                attribute(tag, "data-port").parse().unwrap(),
                attribute(tag, "data-proto").parse().unwrap(),
            )
        })
        .collect();
    let received: BTreeSet<_> = totals.keys().cloned().collect();
    assert_eq!(drawn, received, "edges drawn vs keys received");
    let hosts: BTreeSet<String> = elements(&dom, "host")
        .into_iter()
        .map(|tag| attribute(tag, "data-host"))
        .collect();
    let expected_hosts: BTreeSet<String> = received
        .iter()
        .flat_map(|(s, d, _, _)| [s.clone(), d.clone()])
        .collect();
    assert_eq!(hosts, expected_hosts);
}

fn ureq_get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

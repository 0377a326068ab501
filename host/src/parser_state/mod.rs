//! Parser state snapshots on disk, so templates outlive a restart or a
//! crash: Cisco IOS refreshes v9/IPFIX templates only every 30 minutes, so
//! a collector that forgets them loses up to 30 minutes of a router's flows.
//!
//! One file per consumer and parser worker:
//! `data_directory/parser-state/<consumer>/worker-<N>.state`, written
//! atomically (temp file, fsync, rename, fsync of the folder) by the worker
//! thread that owns the session, never on the async runtime. A file is
//! magic, format version, the WIT contract version and plugin name it was
//! made with, the payload length, a CRC-32, then the plugin's own bytes.
//! A file that fails its checks is moved to `corrupt/`; one made by another
//! plugin, or that the plugin refuses, to `set-aside/` — never a crash.

mod shared;

pub use shared::{StateSink, StateSinks};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"FLPS";
const FORMAT: u16 = 1;
/// The contract the snapshot's bytes were produced under.
pub use crate::plugin::WIT_VERSION;

/// Whether a snapshot made under contract `made` can be restored now: the
/// same major. 0.3.0 is the contract 1.0.0 renumbered when the plugin SDK
/// went public (no change to it), so its snapshots carry over an upgrade.
fn contract_restorable(made: &str) -> bool {
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_owned();
    made == "0.3.0" || major(made) == major(WIT_VERSION)
}

/// A snapshot that passed its checks.
#[derive(Debug)]
pub struct Snapshot {
    pub worker: usize,
    pub path: PathBuf,
    pub state: Vec<u8>,
}

#[derive(Clone)]
pub struct ParserStateStore {
    dir: PathBuf,
    /// Where snapshots are also published, by consumer (a Kafka state
    /// topic shared by a group's members).
    sinks: Arc<StateSinks>,
}

impl ParserStateStore {
    pub fn new(data_directory: &Path) -> Self {
        ParserStateStore {
            dir: data_directory.join("parser-state"),
            sinks: Arc::default(),
        }
    }

    /// Snapshots written also go to the sink registered for their consumer.
    pub fn with_sinks(mut self, sinks: Arc<StateSinks>) -> Self {
        self.sinks = sinks;
        self
    }

    /// The state in a snapshot published by a member of the group, if
    /// `plugin` made it under a contract it can restore.
    pub fn decode_shared<'a>(bytes: &'a [u8], plugin: &str) -> Result<&'a [u8], String> {
        let (made_by, wit, state) = decode(bytes)?;
        if made_by != plugin || !contract_restorable(wit) {
            return Err(format!(
                "made by plugin {made_by:?} (contract {wit}); this consumer runs {plugin:?} (contract {WIT_VERSION})"
            ));
        }
        Ok(state)
    }

    /// Removes the temp files a crash left behind. Only at start, before
    /// any worker writes.
    pub fn sweep_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            crate::durable_file::sweep_temp_files(&entry.path());
        }
    }

    fn consumer_dir(&self, consumer: &str) -> PathBuf {
        self.dir.join(consumer)
    }

    /// Writes worker `worker`'s snapshot of `consumer` (plugin `plugin`).
    pub fn write(
        &self,
        consumer: &str,
        worker: usize,
        plugin: &str,
        state: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.consumer_dir(consumer);
        fs::create_dir_all(&dir)?;
        let encoded = encode(plugin, state);
        crate::durable_file::write_atomically(&dir, &format!("worker-{worker}.state"), &encoded)?;
        self.sinks.publish(consumer, worker, &encoded);
        Ok(())
    }

    /// Every sound snapshot of `consumer` made by `plugin`, by worker.
    /// Others are moved aside (logged) and not returned.
    pub fn load(&self, consumer: &str, plugin: &str) -> Vec<Snapshot> {
        let dir = self.consumer_dir(consumer);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(worker) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("worker-")?.strip_suffix(".state"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot read parser state: {e}");
                    continue;
                }
            };
            match decode(&bytes) {
                Err(why) => self.quarantine(&path, "corrupt", &why),
                Ok((made_by, wit, _)) if made_by != plugin || !contract_restorable(wit) => self
                    .quarantine(
                        &path,
                        "set-aside",
                        &format!(
                            "made by plugin {made_by:?} (contract {wit}); this consumer runs {plugin:?} (contract {WIT_VERSION})"
                        ),
                    ),
                Ok((_, _, state)) => found.push(Snapshot {
                    worker,
                    path,
                    state: state.to_vec(),
                }),
            }
        }
        found.sort_by_key(|s| s.worker);
        found
    }

    /// Moves a snapshot the plugin refused to `set-aside/`.
    pub fn set_aside(&self, snapshot: &Snapshot, why: &str) {
        self.quarantine(&snapshot.path, "set-aside", why);
    }

    fn quarantine(&self, path: &Path, folder: &str, why: &str) {
        let Some(name) = path.file_name() else { return };
        let consumer = path
            .parent()
            .and_then(Path::file_name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{consumer}-{}", name.to_string_lossy());
        match crate::durable_file::move_aside(path, &self.dir.join(folder), &name) {
            Ok(target) => tracing::warn!(
                from = %path.display(),
                to = %target.display(),
                "parser state not restored, moved aside: {why}"
            ),
            Err(e) => tracing::error!(
                path = %path.display(),
                "parser state not restored ({why}) and could not be moved aside: {e}"
            ),
        }
    }
}

fn encode(plugin: &str, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(state.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_be_bytes());
    for text in [WIT_VERSION, plugin] {
        out.push(text.len().min(255) as u8);
        out.extend_from_slice(&text.as_bytes()[..text.len().min(255)]);
    }
    out.extend_from_slice(&(state.len() as u32).to_be_bytes());
    let crc = crc32fast::hash(&[&out[..], state].concat());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(state);
    out
}

/// Reads a file front to back; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let part = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| format!("cut short at byte {}", self.at))?;
        self.at += n;
        Ok(part)
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let len = usize::from(self.take(1)?[0]);
        std::str::from_utf8(self.take(len)?).map_err(|_| "a name is not UTF-8".to_owned())
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// `(plugin, wit version, state)` of a sound file.
fn decode(bytes: &[u8]) -> Result<(&str, &str, &[u8]), String> {
    let mut c = Cursor { bytes, at: 0 };
    if c.take(4)? != MAGIC {
        return Err("not a flowlink parser state file (bad magic)".into());
    }
    let format = u16::from_be_bytes(c.take(2)?.try_into().expect("2 bytes"));
    if format != FORMAT {
        return Err(format!("format {format}, this build reads {FORMAT}"));
    }
    let wit = c.text()?;
    let plugin = c.text()?;
    let len = c.u32()? as usize;
    let header_end = c.at;
    let crc = c.u32()?;
    let state = c.take(len)?;
    if c.at != bytes.len() {
        return Err(format!("{} bytes after the state", bytes.len() - c.at));
    }
    if crc32fast::hash(&[&bytes[..header_end], state].concat()) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((plugin, wit, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (ParserStateStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "flowlink-state-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        (ParserStateStore::new(&dir), dir)
    }

    #[test]
    fn round_trip_and_quarantine() {
        let (store, dir) = store();
        store.write("edge", 0, "netflow", b"templates").unwrap();
        store.write("edge", 1, "netflow", b"more").unwrap();
        let loaded = store.load("edge", "netflow");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].state, b"templates");
        assert_eq!(loaded[1].worker, 1);
        // Another plugin's snapshot is set aside, not restored.
        assert!(store.load("edge", "ipfix").is_empty());
        assert!(
            dir.join("parser-state/set-aside/edge-worker-0.state")
                .exists()
        );
        // A flipped byte: quarantined as corrupt.
        store.write("edge", 2, "netflow", b"abc").unwrap();
        let path = dir.join("parser-state/edge/worker-2.state");
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(store.load("edge", "netflow").is_empty());
        assert!(
            dir.join("parser-state/corrupt/edge-worker-2.state")
                .exists()
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn truncated_files_are_refused() {
        let bytes = encode("netflow", b"0123456789");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode(&bytes).unwrap(),
            ("netflow", WIT_VERSION, &b"0123456789"[..])
        );
    }
}

//! The disk spool in `data_directory`: batches the PCE could not take,
//! kept until it can. Every file is written atomically (temp, fsync,
//! rename, fsync of the directory) and checksummed; the directory is locked
//! so two daemons never share it; it is bounded by size and age, oldest
//! dropped first and counted.

mod record;

pub use record::{decode as decode_record, encode as encode_record};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::durable_file;
use crate::metrics::{self, UploadCounters};
use crate::pipeline::now_ms;
use crate::proto::FlowBatch;

const EXTENSION: &str = "batch";

/// Size and age bounds (`data_directory_size_mb` / `_kb`, `file_retention_hours`).
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub max_bytes: u64,
    pub retention: Duration,
}

impl SpoolLimits {
    /// The spool builds its limits from the configuration, not the other
    /// way round: `config` only describes.
    pub fn from_config(config: &crate::config::Config) -> Self {
        SpoolLimits {
            max_bytes: config.spool_max_bytes,
            retention: config.file_retention,
        }
    }
}

/// A batch read back from the spool.
pub struct SpooledBatch {
    pub name: String,
    pub batch: FlowBatch,
}

pub struct Spool {
    dir: PathBuf,
    aside_dir: PathBuf,
    corrupt_dir: PathBuf,
    limits: SpoolLimits,
    /// File name (sorts oldest first) → size in bytes.
    files: BTreeMap<String, u64>,
    bytes: u64,
    next_seq: u64,
    counters: Arc<UploadCounters>,
    /// Held for the life of the spool: the lock is released when it closes.
    _lock: File,
}

/// [`durable_file::write_atomically`] (its error names the file), as anyhow.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    Ok(durable_file::write_atomically(dir, name, bytes)?)
}

/// `1714521600123-000042.batch` → its creation time.
fn created_ms(name: &str) -> Option<u64> {
    name.strip_suffix(&format!(".{EXTENSION}"))?
        .split_once('-')?
        .0
        .parse()
        .ok()
}

impl Spool {
    /// Opens (and locks) the spool under `data_directory`, indexing what an
    /// earlier run left there and removing its unfinished temp files.
    pub fn open(
        data_directory: &Path,
        limits: SpoolLimits,
        counters: Arc<UploadCounters>,
    ) -> Result<Spool> {
        let dir = data_directory.join("spool");
        let aside_dir = data_directory.join("rejected");
        let corrupt_dir = data_directory.join("corrupt");
        for d in [&dir, &aside_dir, &corrupt_dir] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let lock_path = data_directory.join("flowlink.lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "data_directory {} is in use by another flowlink process (lock {})",
                data_directory.display(),
                lock_path.display()
            );
        }
        // Only this process writes here now: a temp file is a crash's.
        durable_file::sweep_temp_files(&dir);
        durable_file::sweep_temp_files(&aside_dir);
        let mut spool = Spool {
            dir,
            aside_dir,
            corrupt_dir,
            limits,
            files: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
            counters,
            _lock: lock,
        };
        for entry in fs::read_dir(&spool.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if entry.file_type()?.is_file() {
                if created_ms(&name).is_some() {
                    spool.add_index(name, entry.metadata()?.len());
                } else {
                    spool.quarantine(&name, "not a spool file name");
                }
            }
        }
        if !spool.files.is_empty() {
            tracing::info!(
                batches = spool.files.len(),
                bytes = spool.bytes,
                "spool holds batches from an earlier run; they will be sent first"
            );
        }
        spool.update_gauges();
        Ok(spool)
    }

    fn add_index(&mut self, name: String, size: u64) {
        if let Some(seq) = name
            .split_once('-')
            .and_then(|(_, rest)| rest.split('.').next()?.parse::<u64>().ok())
        {
            self.next_seq = self.next_seq.max(seq + 1);
        }
        self.bytes += size;
        self.files.insert(name, size);
    }

    fn drop_index(&mut self, name: &str) {
        if let Some(size) = self.files.remove(name) {
            self.bytes -= size;
        }
    }

    fn update_gauges(&self) {
        self.counters.spool_batches.store(
            self.files.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.counters
            .spool_bytes
            .store(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Adds a batch, then enforces the bounds (which may drop the oldest).
    pub fn push(&mut self, batch: &FlowBatch) -> Result<()> {
        let bytes = encode_record(batch);
        let name = format!("{:013}-{:06}.{EXTENSION}", now_ms(), self.next_seq);
        self.next_seq += 1;
        write_atomically(&self.dir, &name, &bytes)?;
        self.add_index(name, bytes.len() as u64);
        metrics::add(&self.counters.batches_spooled, 1);
        self.prune();
        self.update_gauges();
        Ok(())
    }

    /// The oldest readable batch; unreadable files on the way are moved to
    /// `corrupt/` and counted.
    pub fn oldest(&mut self) -> Option<SpooledBatch> {
        while let Some(name) = self.files.keys().next().cloned() {
            let read = fs::read(self.dir.join(&name)).map_err(|e| e.to_string());
            match read.and_then(|bytes| decode_record(&bytes).map_err(|e| e.to_string())) {
                Ok(batch) => return Some(SpooledBatch { name, batch }),
                Err(why) => self.quarantine(&name, &why),
            }
        }
        None
    }

    /// Forgets a batch the PCE acknowledged.
    pub fn remove(&mut self, name: &str) {
        if let Err(e) = fs::remove_file(self.dir.join(name)) {
            tracing::warn!("could not remove spooled batch {name}: {e}");
        }
        self.drop_index(name);
        self.update_gauges();
    }

    fn quarantine(&mut self, name: &str, why: &str) {
        match durable_file::move_aside(&self.dir.join(name), &self.corrupt_dir, name) {
            Ok(target) => tracing::error!(
                "spool file {name} is unreadable ({why}); moved to {}",
                target.display()
            ),
            Err(e) => tracing::error!(
                "spool file {name} is unreadable ({why}) and could not be moved: {e}"
            ),
        }
        metrics::add(&self.counters.spool_corrupt, 1);
        self.drop_index(name);
        self.update_gauges();
    }

    /// Keeps a batch the PCE refused for good in `rejected/`, beside the
    /// PCE's answer, instead of dropping it. `spooled` names its spool file.
    pub fn set_aside(
        &mut self,
        batch: &FlowBatch,
        spooled: Option<&str>,
        answer: &str,
    ) -> Result<()> {
        let name = format!("{:013}-{}.{EXTENSION}", now_ms(), batch.batch_id);
        write_atomically(&self.aside_dir, &name, &encode_record(batch))?;
        write_atomically(&self.aside_dir, &format!("{name}.txt"), answer.as_bytes())?;
        metrics::add(&self.counters.batches_set_aside, 1);
        if let Some(spooled) = spooled {
            self.remove(spooled);
        }
        self.bound_set_aside();
        Ok(())
    }

    /// `rejected/` has the spool's size bound too: a PCE that refuses every
    /// window (a revoked key) must not fill the disk. Oldest go first,
    /// counted and logged like spool pruning.
    fn bound_set_aside(&mut self) {
        let Ok(entries) = fs::read_dir(&self.aside_dir) else {
            return;
        };
        let mut batches: Vec<(String, u64)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let answer =
                    fs::metadata(self.aside_dir.join(format!("{name}.txt"))).map_or(0, |m| m.len());
                name.ends_with(&format!(".{EXTENSION}"))
                    .then(|| (name, e.metadata().map_or(0, |m| m.len()) + answer))
            })
            .collect();
        batches.sort();
        let mut total: u64 = batches.iter().map(|(_, size)| size).sum();
        let (mut dropped, mut flows) = (0u64, 0u64);
        for (name, size) in &batches[..batches.len().saturating_sub(1)] {
            if total <= self.limits.max_bytes {
                break;
            }
            flows += remove_batch_file(&self.aside_dir.join(name));
            let _ = fs::remove_file(self.aside_dir.join(format!("{name}.txt")));
            total -= size;
            dropped += 1;
        }
        self.count_pruned(
            dropped,
            flows,
            "refused batches in rejected/ are over data_directory_size_mb",
        );
    }

    /// Counts and logs batches dropped by a bound.
    fn count_pruned(&self, batches: u64, flows: u64, why: &str) {
        if batches == 0 {
            return;
        }
        metrics::add(&self.counters.batches_pruned, batches);
        metrics::add(&self.counters.flows_pruned, flows);
        tracing::warn!(
            batches,
            flows,
            "pruned the oldest spooled batches: {why}; those flows are lost"
        );
    }

    /// Drops files past `file_retention_hours`, then the oldest while the
    /// spool is over its size bound. Says how many flows that lost.
    pub fn prune(&mut self) {
        let now = now_ms();
        let retention_ms = self.limits.retention.as_millis() as u64;
        let expired: Vec<String> = self
            .files
            .keys()
            .filter(|n| created_ms(n).is_some_and(|t| now.saturating_sub(t) > retention_ms))
            .cloned()
            .collect();
        self.drop_files(expired, "older than file_retention_hours");
        let mut over = Vec::new();
        let mut bytes = self.bytes;
        for (name, size) in &self.files {
            // Never the newest: it is what the size bound is making room for.
            if bytes <= self.limits.max_bytes || self.files.len() - over.len() <= 1 {
                break;
            }
            bytes -= size;
            over.push(name.clone());
        }
        self.drop_files(over, "the spool is over data_directory_size_mb");
        self.update_gauges();
    }

    fn drop_files(&mut self, names: Vec<String>, why: &str) {
        let mut flows = 0u64;
        for name in &names {
            flows += remove_batch_file(&self.dir.join(name));
            self.drop_index(name);
        }
        self.count_pruned(names.len() as u64, flows, why);
    }
}

/// Deletes a batch file; returns the flows it held (from its header).
fn remove_batch_file(path: &Path) -> u64 {
    let flows = fs::read(path)
        .ok()
        .and_then(|b| record::flow_count(&b))
        .map_or(0, u64::from);
    let _ = fs::remove_file(path);
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::AggregatedFlow;

    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("flowlink-spool-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn batch(id: &str, flows: usize) -> FlowBatch {
        FlowBatch {
            batch_id: id.into(),
            flows: vec![
                AggregatedFlow {
                    protocol: 6,
                    ..Default::default()
                };
                flows
            ],
            ..Default::default()
        }
    }

    fn limits(max_bytes: u64) -> SpoolLimits {
        SpoolLimits {
            max_bytes,
            retention: Duration::from_secs(3600),
        }
    }

    #[test]
    fn keeps_order_across_reopen_and_refuses_a_second_owner() {
        let tmp = temp_dir("order");
        let dir = tmp.path();
        let counters = Arc::new(UploadCounters::default());
        {
            let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
            spool.push(&batch("a", 1)).unwrap();
            spool.push(&batch("b", 2)).unwrap();
            let err = Spool::open(dir, limits(1 << 20), counters.clone())
                .err()
                .unwrap();
            assert!(
                err.to_string().contains("in use by another flowlink"),
                "{err}"
            );
        }
        let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
        spool.push(&batch("c", 1)).unwrap();
        let mut seen = Vec::new();
        while let Some(entry) = spool.oldest() {
            seen.push(entry.batch.batch_id.clone());
            spool.remove(&entry.name);
        }
        assert_eq!(seen, ["a", "b", "c"]);
    }

    #[test]
    fn corrupt_files_are_quarantined_and_counted() {
        let tmp = temp_dir("corrupt");
        let dir = tmp.path();
        let counters = Arc::new(UploadCounters::default());
        let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
        spool.push(&batch("good", 1)).unwrap();
        drop(spool);
        fs::write(dir.join("spool/0000000000001-000000.batch"), b"garbage").unwrap();
        let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
        assert_eq!(spool.oldest().unwrap().batch.batch_id, "good");
        assert!(dir.join("corrupt/0000000000001-000000.batch").exists());
        assert_eq!(
            counters
                .spool_corrupt
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn refused_batches_are_kept_within_the_size_bound() {
        let tmp = temp_dir("aside");
        let dir = tmp.path();
        let counters = Arc::new(UploadCounters::default());
        let one = encode_record(&batch("x", 10)).len() as u64 + 3;
        let mut spool = Spool::open(dir, limits(one * 2), counters.clone()).unwrap();
        for id in ["a", "b", "c"] {
            spool.set_aside(&batch(id, 10), None, "401").unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut kept: Vec<String> = fs::read_dir(dir.join("rejected"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept.len(), 4, "two batches and their answers: {kept:?}");
        assert!(
            kept[0].ends_with("-b.batch") && kept[2].ends_with("-c.batch"),
            "{kept:?}"
        );
        assert_eq!(
            counters
                .flows_pruned
                .load(std::sync::atomic::Ordering::Relaxed),
            10
        );
    }

    #[test]
    fn files_past_the_retention_are_dropped() {
        let tmp = temp_dir("retention");
        let dir = tmp.path();
        let counters = Arc::new(UploadCounters::default());
        let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
        spool.push(&batch("fresh", 1)).unwrap();
        drop(spool);
        // Written two hours ago by an earlier run; retention is one hour.
        let old = format!("{:013}-000099.batch", now_ms() - 2 * 3600 * 1000);
        fs::write(
            dir.join("spool").join(&old),
            encode_record(&batch("stale", 4)),
        )
        .unwrap();
        let mut spool = Spool::open(dir, limits(1 << 20), counters.clone()).unwrap();
        spool.prune();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.oldest().unwrap().batch.batch_id, "fresh");
        assert_eq!(
            counters
                .flows_pruned
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
    }

    #[test]
    fn size_bound_drops_the_oldest_and_counts_their_flows() {
        let tmp = temp_dir("prune");
        let dir = tmp.path();
        let counters = Arc::new(UploadCounters::default());
        let one = encode_record(&batch("x", 10)).len() as u64;
        let mut spool = Spool::open(dir, limits(one * 2), counters.clone()).unwrap();
        for id in ["a", "b", "c", "d"] {
            spool.push(&batch(id, 10)).unwrap();
        }
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.oldest().unwrap().batch.batch_id, "c");
        assert_eq!(
            counters
                .batches_pruned
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        assert_eq!(
            counters
                .flows_pruned
                .load(std::sync::atomic::Ordering::Relaxed),
            20
        );
    }
}

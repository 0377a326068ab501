//! Where a relay keeps messages the broker cannot take (away, or slower
//! than the exporters): `data_directory/relay/<consumer>/`, in segment
//! files written the spool's way (temp file, fsync, rename, fsync of the
//! folder) and checksummed. Bounded by bytes: past the bound the oldest
//! segment goes, and its messages are counted as dropped.
//!
//! A segment read back for the broker stays on disk until each of its
//! messages is delivered or written again elsewhere: a crash meanwhile
//! sends them twice (at least once), never loses them.
//!
//! Blocking: [`DiskBuffer::write_pending`] and [`DiskBuffer::read_oldest`]
//! run on a blocking thread.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::record::RelayRecord;

const MAGIC: &[u8; 4] = b"FLRB";
/// Pending messages are written once they hold this many bytes…
const SEGMENT_BYTES: usize = 4 << 20;
/// …or the oldest of them waited this long.
const PENDING_AGE: Duration = Duration::from_millis(500);

/// A segment file; removed from disk when the last record read from it
/// lets go.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    bytes: u64,
    on_disk: Arc<AtomicU64>,
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), "cannot remove a relayed segment: {e}");
        }
        self.on_disk.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What a write or a prune did, for the counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub written: u64,
    pub dropped: u64,
}

pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes of every segment file still on disk (queued or being drained).
    on_disk: Arc<AtomicU64>,
    /// Segments not read back yet, oldest first: `(path, bytes, messages)`.
    queued: VecDeque<(PathBuf, u64, u64)>,
    next_seq: u64,
    pending: VecDeque<RelayRecord>,
    pending_bytes: usize,
    pending_since: Option<Instant>,
}

impl DiskBuffer {
    /// Opens (creating) the folder; segments an earlier run left are
    /// queued first, so they go to the broker before anything new.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<DiskBuffer> {
        fs::create_dir_all(dir)?;
        crate::durable_file::sweep_temp_files(dir);
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("seg-")?.strip_suffix(".relay"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                let bytes = entry.metadata().map_or(0, |m| m.len());
                found.push((seq, path, bytes));
            }
        }
        found.sort();
        let next_seq = found.last().map_or(0, |(seq, _, _)| seq + 1);
        let on_disk = found.iter().map(|(_, _, bytes)| bytes).sum();
        if !found.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                segments = found.len(),
                bytes = on_disk,
                "relay: messages an earlier run could not deliver go first"
            );
        }
        Ok(DiskBuffer {
            dir: dir.to_owned(),
            max_bytes,
            on_disk: Arc::new(AtomicU64::new(on_disk)),
            // The message count of an old segment is known once read.
            queued: found.into_iter().map(|(_, p, b)| (p, b, 0)).collect(),
            next_seq,
            pending: VecDeque::new(),
            pending_bytes: 0,
            pending_since: None,
        })
    }

    /// Nothing waits, in memory or on disk.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.queued.is_empty()
    }

    pub fn has_segments(&self) -> bool {
        !self.queued.is_empty()
    }

    pub fn bytes_on_disk(&self) -> u64 {
        self.on_disk.load(Ordering::Relaxed)
    }

    /// Appends a message; it is written with the next segment.
    pub fn push(&mut self, record: RelayRecord) {
        self.pending_bytes += record.encoded_len();
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending.push_back(record);
    }

    /// Takes the oldest pending message, when no segment is older.
    pub fn pop_pending(&mut self) -> Option<RelayRecord> {
        if !self.queued.is_empty() {
            return None;
        }
        let record = self.pending.pop_front()?;
        self.pending_bytes -= record.encoded_len();
        if self.pending.is_empty() {
            self.pending_since = None;
        }
        Some(record)
    }

    /// Puts a message taken by [`Self::pop_pending`] back in front.
    pub fn unpop_pending(&mut self, record: RelayRecord) {
        self.pending_bytes += record.encoded_len();
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending.push_front(record);
    }

    /// Whether the pending messages should go to disk now.
    pub fn write_due(&self) -> bool {
        self.pending_bytes >= SEGMENT_BYTES
            || self
                .pending_since
                .is_some_and(|since| since.elapsed() >= PENDING_AGE)
    }

    /// Writes the pending messages as one segment (their receipts fire),
    /// then drops the oldest segments past the bound. A segment that
    /// cannot be written loses its messages: they are counted as dropped.
    pub fn write_pending(&mut self) -> WriteOutcome {
        let mut outcome = WriteOutcome::default();
        if self.pending.is_empty() {
            return outcome;
        }
        let records: Vec<RelayRecord> = self.pending.drain(..).collect();
        self.pending_bytes = 0;
        self.pending_since = None;
        let mut bytes =
            Vec::with_capacity(records.iter().map(|r| r.encoded_len()).sum::<usize>() + 16);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(records.len() as u32).to_be_bytes());
        for record in &records {
            record.encode(&mut bytes);
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let name = format!("seg-{:020}.relay", self.next_seq);
        self.next_seq += 1;
        let count = records.len() as u64;
        match crate::durable_file::write_atomically(&self.dir, &name, &bytes) {
            Ok(()) => {
                self.on_disk
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                self.queued
                    .push_back((self.dir.join(&name), bytes.len() as u64, count));
                records.into_iter().for_each(RelayRecord::settle);
                outcome.written = count;
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), messages = count, "relay: cannot write to the disk buffer, messages dropped: {e}");
                outcome.dropped += count;
            }
        }
        outcome.dropped += self.prune();
        outcome
    }

    /// Drops the oldest queued segments until the buffer is within its
    /// bound; returns the messages dropped.
    fn prune(&mut self) -> u64 {
        let mut dropped = 0;
        while self.bytes_on_disk() > self.max_bytes && self.queued.len() > 1 {
            let (path, bytes, mut count) = self.queued.pop_front().expect("non-empty");
            if count == 0 {
                count = fs::read(&path)
                    .ok()
                    .and_then(|b| {
                        b.get(4..8)
                            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
                    })
                    .map_or(0, u64::from);
            }
            tracing::warn!(path = %path.display(), messages = count, "relay: disk buffer over disk_max_mb, oldest messages dropped");
            drop(SegmentFile {
                path,
                bytes,
                on_disk: self.on_disk.clone(),
            });
            dropped += count;
        }
        dropped
    }

    /// Reads the oldest segment back, each record holding the file until
    /// it is delivered or written again. A corrupt segment is moved to
    /// `corrupt/` and counted as dropped (`Err` with its message count).
    pub fn read_oldest(&mut self) -> Option<Result<Vec<RelayRecord>, u64>> {
        let (path, bytes, count) = self.queued.pop_front()?;
        let file = Arc::new(SegmentFile {
            path: path.clone(),
            bytes,
            on_disk: self.on_disk.clone(),
        });
        let read = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|data| decode_segment(&data));
        match read {
            Ok(mut records) => {
                for record in &mut records {
                    record.segment = Some(file.clone());
                }
                Some(Ok(records))
            }
            Err(why) => {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let moved = name.map(|name| {
                    crate::durable_file::move_aside(&path, &self.dir.join("corrupt"), &name)
                });
                tracing::error!(path = %path.display(), moved = ?moved.map(|m| m.is_ok()), "relay: unreadable disk buffer segment set aside: {why}");
                Some(Err(count))
            }
        }
    }
}

fn decode_segment(data: &[u8]) -> Result<Vec<RelayRecord>, String> {
    if data.len() < 12 || &data[..4] != MAGIC {
        return Err("not a relay segment (bad magic or too short)".into());
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err("checksum mismatch".into());
    }
    let count = u32::from_be_bytes(body[4..8].try_into().expect("4 bytes"));
    let mut rest = &body[8..];
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (record, after) = RelayRecord::decode(rest)?;
        records.push(record);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last record", rest.len()));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Ack;

    fn record(n: u8, ack: Option<Ack>) -> RelayRecord {
        RelayRecord {
            exporter: format!("127.0.0.{n}:9995").parse().unwrap(),
            received_ms: u64::from(n),
            payload: vec![n; 1000].into(),
            ack,
            segment: None,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowlink-relay-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn segments_survive_a_restart_and_go_once_every_record_is_settled() {
        let dir = dir("restart");
        let mut buffer = DiskBuffer::open(&dir, 1 << 20).unwrap();
        let (ack, mut receipt) = Ack::new();
        buffer.push(record(1, Some(ack)));
        buffer.push(record(2, None));
        assert_eq!(
            buffer.write_pending(),
            WriteOutcome {
                written: 2,
                dropped: 0
            }
        );
        assert!(receipt.try_recv().is_ok(), "on disk: the receipt fires");
        drop(buffer);

        let mut reopened = DiskBuffer::open(&dir, 1 << 20).unwrap();
        assert!(reopened.has_segments());
        let records = reopened.read_oldest().unwrap().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].exporter, "127.0.0.2:9995".parse().unwrap());
        let mut records = records.into_iter();
        records.next().unwrap().settle();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "one record still out"
        );
        records.next().unwrap().settle();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(reopened.bytes_on_disk(), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_oldest_segments_go_past_the_bound() {
        let dir = dir("bound");
        let mut buffer = DiskBuffer::open(&dir, 2500).unwrap();
        let mut dropped = 0;
        for n in 0..4 {
            buffer.push(record(n, None));
            dropped += buffer.write_pending().dropped;
        }
        assert_eq!(dropped, 2, "two 1 kB segments fit in 2.5 kB");
        let first = buffer.read_oldest().unwrap().unwrap();
        assert_eq!(first[0].received_ms, 2);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_segment_is_set_aside() {
        let dir = dir("corrupt");
        let mut buffer = DiskBuffer::open(&dir, 1 << 20).unwrap();
        buffer.push(record(1, None));
        buffer.write_pending();
        let path = buffer.queued[0].0.clone();
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(buffer.read_oldest().unwrap().unwrap_err(), 1);
        assert!(dir.join("corrupt").join(path.file_name().unwrap()).exists());
        let _ = fs::remove_dir_all(&dir);
    }
}

//! `data_directory/quarantine/<consumer>/worker-<N>/`: the messages that
//! made a plugin fault (or met an open circuit breaker), one raw file each,
//! for `flowlink decode --plugin … FILE` to replay once the plugin is fixed.
//! Bounded in bytes per worker (`quarantine_mb` shared by the workers): the
//! oldest files go first. Written by the worker thread that owns the
//! session, never on the async runtime; a write that fails is logged and
//! costs nothing else.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Quarantine {
    dir: PathBuf,
    max_bytes: u64,
    /// Files kept, oldest first, with their sizes.
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
    seq: u64,
}

impl Quarantine {
    /// `None` when `max_bytes` is 0 (quarantine off). Files a previous run
    /// left are counted against the bound, oldest first by name.
    pub fn open(
        data_directory: &Path,
        consumer: &str,
        worker: usize,
        max_bytes: u64,
    ) -> Option<Self> {
        if max_bytes == 0 {
            return None;
        }
        let dir = data_directory
            .join("quarantine")
            .join(consumer)
            .join(format!("worker-{worker}"));
        let mut existing: Vec<(PathBuf, u64)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        existing.sort();
        let bytes = existing.iter().map(|(_, size)| size).sum();
        Some(Quarantine {
            dir,
            max_bytes,
            files: existing.into(),
            bytes,
            seq: 0,
        })
    }

    /// Keeps `payload`; the file name says when and from where it came.
    /// False when it was not kept (larger than the bound, or the write failed).
    pub fn keep(&mut self, received_ms: u64, exporter: SocketAddr, payload: &[u8]) -> bool {
        let size = payload.len() as u64;
        if size > self.max_bytes {
            return false;
        }
        while self.bytes + size > self.max_bytes {
            let Some((old, old_size)) = self.files.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&old);
            self.bytes -= old_size;
        }
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "cannot keep a message in quarantine: {e}");
            return false;
        }
        // Never over a file of an earlier run: `create_new`, else the next number.
        for _ in 0..1000 {
            self.seq += 1;
            let name = format!(
                "{received_ms:013}-{}-{}-{:06}.bin",
                exporter.ip().to_string().replace(':', "_"),
                exporter.port(),
                self.seq
            );
            let path = self.dir.join(name);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, payload));
            match written {
                Ok(()) => {
                    self.files.push_back((path, size));
                    self.bytes += size;
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    tracing::warn!(path = %path.display(), "cannot keep a message in quarantine: {e}");
                    return false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_files_go_when_the_bound_is_reached() {
        let data = std::env::temp_dir().join(format!("flowlink-quarantine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let exporter: SocketAddr = "192.0.2.1:2055".parse().unwrap();
        let mut q = Quarantine::open(&data, "c", 0, 250).unwrap();
        for n in 0..5u8 {
            assert!(q.keep(1_000 + u64::from(n), exporter, &[n; 100]));
        }
        assert!(!q.keep(2_000, exporter, &[9; 300]), "larger than the bound");
        let mut kept: Vec<Vec<u8>> = std::fs::read_dir(data.join("quarantine/c/worker-0"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, vec![vec![3u8; 100], vec![4u8; 100]]);
        // A new run counts what is there and writes beside it.
        let mut again = Quarantine::open(&data, "c", 0, 250).unwrap();
        assert_eq!(again.bytes, 200);
        assert!(again.keep(1_003, exporter, &[7; 50]));
        assert_eq!(
            std::fs::read_dir(data.join("quarantine/c/worker-0"))
                .unwrap()
                .count(),
            3
        );
        assert!(Quarantine::open(&data, "c", 0, 0).is_none());
        std::fs::remove_dir_all(&data).unwrap();
    }
}

//! Checkpoints of open windows, so a crash loses at most
//! `checkpoint_seconds` of a window, and replayable sources (files, Kafka,
//! CloudWatch) move their resume point only past records whose aggregate
//! is on disk.
//!
//! Every `checkpoint_seconds` a window that changed is written whole as
//! `data_directory/windows/<consumer>-<batch id>.window` (the spool's
//! record format, written atomically on a blocking thread); then the
//! receipts of the records in it fire. When the window closes, its batch
//! goes to the uploader with the receipts that came since and the file's
//! name: the uploader fires them and removes the file once the batch is
//! uploaded, spooled or set aside. A file left by a crash is uploaded at
//! the next start under the window's own batch id (a receiver that dedupes
//! on it, as the emulator does, counts it once; CSV has no id, so there a
//! crash between upload and removal sends it twice).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::durable_file;
use crate::proto::FlowBatch;
use crate::spool::{decode_record, encode_record};

const EXTENSION: &str = "window";

#[derive(Debug, Clone)]
pub struct WindowCheckpoints {
    dir: PathBuf,
}

impl WindowCheckpoints {
    pub fn new(data_directory: &Path) -> Self {
        WindowCheckpoints {
            dir: data_directory.join("windows"),
        }
    }

    /// The file of the window whose batch is `batch`.
    pub fn path_of(&self, batch: &FlowBatch) -> PathBuf {
        self.dir.join(file_name(batch))
    }

    /// Writes the window so far. Blocking.
    pub fn write(&self, batch: &FlowBatch) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        Ok(durable_file::write_atomically(
            &self.dir,
            &file_name(batch),
            &encode_record(batch),
        )?)
    }

    /// Windows an earlier run left open, with their files; unreadable ones
    /// are moved to `windows/corrupt/`. Blocking.
    pub fn leftovers(&self) -> Vec<(PathBuf, FlowBatch)> {
        // Called at start, before any window is written: temp files are a
        // crash's.
        durable_file::sweep_temp_files(&self.dir);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
            .collect();
        found.sort();
        let mut out = Vec::new();
        for path in found {
            let read = std::fs::read(&path).map_err(|e| e.to_string());
            match read.and_then(|b| decode_record(&b).map_err(|e| e.to_string())) {
                Ok(batch) => out.push((path, batch)),
                Err(why) => {
                    let name = path.file_name().expect("a file").to_string_lossy();
                    let moved = durable_file::move_aside(&path, &self.dir.join("corrupt"), &name);
                    tracing::error!(
                        path = %path.display(),
                        moved = moved.is_ok(),
                        "window checkpoint unreadable, moved to windows/corrupt/: {why}"
                    );
                }
            }
        }
        out
    }
}

fn file_name(batch: &FlowBatch) -> String {
    format!("{}-{}.{EXTENSION}", batch.consumer, batch.batch_id)
}

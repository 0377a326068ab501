//! Resume points of replayable sources (file offsets, CloudWatch stream
//! tokens), one small JSON file per connector in `data_directory/checkpoints`,
//! replaced atomically so a crash leaves the old or the new point, never half.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::durable_file;

pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// `name` is made of the connector's kind, consumer and index.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating checkpoint directory {}", dir.display()))?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(CheckpointStore {
            path: dir.join(format!("{safe}.json")),
        })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored point; `None` when there is none yet. An unreadable file
    /// is an error naming it: silently starting over would resend or skip.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "checkpoint {} is not readable; move it away to start over",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading checkpoint {}", self.path.display())),
        }
    }

    /// Blocking (an fsync): call it off the async runtime's threads.
    pub fn save<T: Serialize>(&self, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)?;
        let (dir, name) = (
            self.path.parent().expect("a checkpoint folder"),
            self.path
                .file_name()
                .expect("a checkpoint file")
                .to_string_lossy(),
        );
        durable_file::write_atomically(dir, &name, &bytes)
            .with_context(|| format!("saving checkpoint {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unreadable_file() {
        let dir = std::env::temp_dir().join(format!("flowlink-ckpt-{}", std::process::id()));
        let store = CheckpointStore::new(&dir, "file/a b[0]").unwrap();
        assert!(store.path().ends_with("file_a_b_0_.json"));
        assert_eq!(store.load::<u64>().unwrap(), None);
        store.save(&42u64).unwrap();
        assert_eq!(store.load::<u64>().unwrap(), Some(42));
        std::fs::write(store.path(), b"{oops").unwrap();
        let err = store.load::<u64>().unwrap_err().to_string();
        assert!(err.contains("not readable"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Tails one file: new lines become messages, rotation (rename, then a new
//! file at the path) and truncation (copytruncate) are followed, and the
//! position is checkpointed once the parsers took the lines, so a restart
//! continues where the last acknowledged line ended.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::text_framing::{DEFAULT_MAX_MESSAGE_BYTES, TextFramer};
use super::{CheckpointStore, ConnectorContext, ConnectorHandle};
use crate::config::{FileProperties, StartPosition, TcpFraming};
use crate::pipeline::{RawMessage, ShardKey};

const READ_CHUNK: usize = 256 << 10;
/// Fallback when a change notification is missed (network filesystems).
const POLL: Duration = Duration::from_secs(1);

/// The resume point: which file (by inode) and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    inode: u64,
    offset: u64,
}

/// Reads handed on whose position is not saved yet.
const IN_FLIGHT: usize = 65_536;

pub fn start(ctx: ConnectorContext, props: &FileProperties) -> Result<ConnectorHandle> {
    let store = CheckpointStore::new(&ctx.checkpoint_dir, &format!("file-{}", ctx.label()))?;
    let saved: Option<Position> = store.load()?;
    let stop = CancellationToken::new();
    let (wake_tx, wake_rx) = mpsc::channel(1);
    let watcher = watch_parent(&props.path, wake_tx).with_context(|| {
        format!(
            "consumer {:?}: watching {}",
            &*ctx.consumer_name,
            props.path.display()
        )
    })?;
    // Receipts fire once the lines' aggregate is on disk (a window
    // checkpoint, every checkpoint_seconds): room for that many reads.
    let (acks_tx, acks_rx) = mpsc::channel(IN_FLIGHT);
    tracing::info!(consumer = &*ctx.consumer_name, path = %props.path.display(), "file connector tailing");
    let tail = FileTail {
        ctx: ctx.clone(),
        path: props.path.clone(),
        start: props.start_position.unwrap_or_default(),
        framer: TextFramer::new(
            TcpFraming::Newline,
            props.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        ),
        shard: ShardKey::source(ctx.label()),
        acks: acks_tx,
    };
    let tasks = vec![
        tokio::spawn(tail.run(saved, wake_rx, stop.clone(), watcher)),
        tokio::spawn(record_positions(store, acks_rx, ctx.label())),
    ];
    Ok(ConnectorHandle::new(stop, tasks))
}

/// Change events of the file's directory (rotation replaces the file, so
/// the file itself cannot be watched) wake the tail.
fn watch_parent(path: &Path, wake: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = wake.try_send(());
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

struct FileTail {
    ctx: ConnectorContext,
    path: PathBuf,
    start: StartPosition,
    framer: TextFramer,
    /// The worker this file's lines go to, always the same one.
    shard: ShardKey,
    acks: mpsc::Sender<(Position, oneshot::Receiver<()>)>,
}

struct Open {
    file: tokio::fs::File,
    inode: u64,
    /// Bytes read so far.
    offset: u64,
}

impl FileTail {
    async fn run(
        mut self,
        saved: Option<Position>,
        mut wake: mpsc::Receiver<()>,
        stop: CancellationToken,
        _watcher: notify::RecommendedWatcher,
    ) {
        let mut current: Option<Open> = None;
        // A file that appears after the start is new: read from its start.
        let mut first_open = self.path.exists();
        if !first_open {
            tracing::warn!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "file does not exist yet; waiting for it");
        }
        loop {
            if current.is_none() {
                current = self.open(saved, first_open).await;
                first_open &= current.is_none();
            }
            if let Some(open) = current.as_mut() {
                if let Err(e) = self.drain(open).await {
                    tracing::warn!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "reading: {e:#}");
                }
                if let Some(replaced) = self.rotated(open) {
                    // Rotated. Read the old file to its end once more: the
                    // writer may have added lines after the read above.
                    if let Err(e) = self.drain(open).await {
                        tracing::warn!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "reading the rotated file: {e:#}");
                    }
                    let mut last = Vec::new();
                    self.framer.finish(&mut last);
                    self.send(
                        last,
                        Position {
                            inode: open.inode,
                            offset: open.offset,
                        },
                    )
                    .await;
                    tracing::info!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "file rotated; reading the new one from its start");
                    current = self.open_at(replaced, 0).await;
                    continue;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.recv() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Opens the file at the checkpoint (same inode), at the configured
    /// start (no checkpoint), or at 0 (a new file since the checkpoint).
    async fn open(&mut self, saved: Option<Position>, first: bool) -> Option<Open> {
        let meta = std::fs::metadata(&self.path).ok()?;
        let offset = match saved {
            _ if !first => 0,
            Some(p) if p.inode == meta.ino() && p.offset <= meta.len() => p.offset,
            Some(_) => 0,
            None => match self.start {
                StartPosition::Beginning => 0,
                StartPosition::End => meta.len(),
            },
        };
        self.open_at(meta.ino(), offset).await
    }

    async fn open_at(&mut self, inode: u64, offset: u64) -> Option<Open> {
        self.framer.reset();
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "cannot open: {e}");
                return None;
            }
        };
        let inode = file.metadata().await.map_or(inode, |m| m.ino());
        file.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
        Some(Open {
            file,
            inode,
            offset,
        })
    }

    /// The inode now at the path, when it is another file than the open one.
    fn rotated(&self, open: &Open) -> Option<u64> {
        let inode = std::fs::metadata(&self.path).ok()?.ino();
        (inode != open.inode).then_some(inode)
    }

    /// Reads to the current end, sending complete lines.
    async fn drain(&mut self, open: &mut Open) -> Result<()> {
        let len = open.file.metadata().await?.len();
        if len < open.offset {
            tracing::warn!(consumer = &*self.ctx.consumer_name, path = %self.path.display(), "file truncated; reading from its start");
            open.file.seek(std::io::SeekFrom::Start(0)).await?;
            open.offset = 0;
            self.framer.reset();
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = open.file.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            open.offset += n as u64;
            let mut lines = Vec::new();
            let _ = self.framer.feed(&chunk[..n], &mut lines);
            self.ctx
                .report_oversized(&mut self.framer, &self.path.display());
            // What the parsers have once these lines are through.
            let done = open.offset - self.framer.buffered() as u64;
            self.send(
                lines,
                Position {
                    inode: open.inode,
                    offset: done,
                },
            )
            .await;
        }
    }

    async fn send(&self, lines: Vec<u8>, position: Position) {
        if lines.is_empty() {
            return;
        }
        let (message, receipt) = RawMessage::replayable(self.ctx.consumer, self.shard, lines);
        self.ctx.router.route_waiting(message).await;
        let _ = self.acks.send((position, receipt)).await;
    }
}

/// Saves the position of every acknowledged message, in order; stops at
/// the first message the daemon could not finish (it is read again after a
/// restart).
async fn record_positions(
    store: CheckpointStore,
    mut acks: mpsc::Receiver<(Position, oneshot::Receiver<()>)>,
    label: String,
) {
    let mut unsaved = 0u32;
    while let Some((position, receipt)) = acks.recv().await {
        if receipt.await.is_err() {
            break;
        }
        unsaved += 1;
        // Save when caught up, and every 256 messages under steady load.
        if acks.is_empty() || unsaved >= 256 {
            unsaved = 0;
            // An fsync: off the runtime's scheduling.
            if let Err(e) = tokio::task::block_in_place(|| store.save(&position)) {
                tracing::warn!(connector = %label, "{e:#}");
            }
        }
    }
}

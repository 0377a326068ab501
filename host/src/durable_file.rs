//! Files that must survive a crash whole or not at all, and files moved
//! out of the way: one rule for the spool, window checkpoints, source
//! resume points, parser state snapshots and the compiled-plugin cache.
//! Blocking: call these from a blocking thread, never on the async
//! runtime's.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` as `dir/name` so that a crash leaves the old file or
/// the new one, never a torn one: a temp file beside it (named by
/// process, so two processes never share one), fsync, rename, fsync of
/// the directory (so the rename itself is durable).
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    // Unique per process and per write: two threads writing the same name
    // (two workers compiling one plugin) never share a temp file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, dir.join(name)));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("writing {}: {e}", dir.join(name).display()),
        ));
    }
    // The file is whole and in place; only the rename's durability is in
    // doubt. Failing now would make the caller treat written data as lost
    // (and write or send it twice), so say it and go on.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), "syncing the folder after writing {name}: {e}");
    }
    Ok(())
}

/// Moves `path` into `folder` (created if missing) as `name`, for a file
/// that cannot be used but must not be lost (corrupt, refused). Returns
/// where it went.
pub fn move_aside(path: &Path, folder: &Path, name: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(folder)?;
    let target = folder.join(name);
    fs::rename(path, &target)?;
    Ok(target)
}

/// Removes temp files a crash left in `dir` from [`write_atomically`].
pub fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowlink-durable-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temp_file() {
        let dir = scratch("write");
        write_atomically(&dir, "a.bin", b"one").unwrap();
        write_atomically(&dir, "a.bin", b"two").unwrap();
        assert_eq!(fs::read(dir.join("a.bin")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["a.bin"]);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_write_names_the_file_and_keeps_the_old_one() {
        let dir = scratch("fail");
        write_atomically(&dir, "a.bin", b"old").unwrap();
        let missing = dir.join("no-such-folder");
        let err = write_atomically(&missing, "a.bin", b"new").unwrap_err();
        assert!(err.to_string().contains("no-such-folder/a.bin"), "{err}");
        assert_eq!(fs::read(dir.join("a.bin")).unwrap(), b"old");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn crash_leftovers_are_swept_and_moved_files_kept() {
        let dir = scratch("sweep");
        fs::write(dir.join(".a.bin.123.tmp"), b"torn").unwrap();
        fs::write(dir.join("b.bin"), b"bad").unwrap();
        sweep_temp_files(&dir);
        assert!(!dir.join(".a.bin.123.tmp").exists());
        let moved = move_aside(&dir.join("b.bin"), &dir.join("corrupt"), "b.bin").unwrap();
        assert_eq!(fs::read(moved).unwrap(), b"bad");
        let _ = fs::remove_dir_all(dir);
    }
}

//! Making an acknowledged write survive a power cut.
//!
//! sled's `flush` writes its log with `sync_file_range`, which pushes the
//! data pages to the disk but neither the file's metadata (its new length)
//! nor the disk's own write cache: after a power cut (a VM killed by
//! VirtualBox, a laptop battery) the tail of the log can be gone although
//! the write was acknowledged. Values too big for the log go to files of
//! their own under `blobs/`, which sled does not sync at all. So after each
//! flush the store calls `fsync` on the log file, on every blob file it has
//! not synced yet, and on the directories that name them - what etcd does
//! with its WAL before it answers.
//!
//! The cost is one `fsync` per *batch*, not per write: the writer thread
//! commits every write waiting at that moment together (group commit), so
//! under load many writes share one. docs/benchmarks.md has the figures.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The files of one sled database that must reach the disk.
pub struct DiskSync {
    log: File,
    dir: PathBuf,
    blobs: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl DiskSync {
    /// For the database in `dir` (opened already: its files exist).
    pub fn open(dir: &Path) -> std::io::Result<DiskSync> {
        let sync = DiskSync {
            log: File::open(dir.join("db"))?,
            dir: dir.to_path_buf(),
            blobs: dir.join("blobs"),
            synced_blobs: HashSet::new(),
        };
        // The database's own files must be named durably too.
        File::open(dir)?.sync_all()?;
        Ok(sync)
    }

    /// Syncs everything written since the last call.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.log.sync_all()?;
        let mut new_blobs = false;
        if let Ok(entries) = std::fs::read_dir(&self.blobs) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !self.synced_blobs.contains(&name) {
                    File::open(entry.path())?.sync_all()?;
                    self.synced_blobs.insert(name);
                    new_blobs = true;
                }
            }
        }
        if new_blobs {
            File::open(&self.blobs)?.sync_all()?;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

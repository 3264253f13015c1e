//! Snapshot files: the state the journal's older entries add up to, in a file of its own
//! beside the journal (`<journal>.snapshot.<through>.<nonce>`, `through` being the last
//! journal entry it covers; the nonce keeps two writers from ever sharing a name), in the
//! entry format of [`crate::entry`].
//!
//! A snapshot is written to a temporary name, synced, renamed and its directory synced
//! before the journal names it: a file the journal names is whole on disk, whatever
//! happens after. Writing it takes no SQLite lock, so group commits go on meanwhile. A file
//! the journal does not name (a crash before the switch, or after it but before the old
//! file was removed) is removed when the journal opens.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the snapshots of one journal live, and their names.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
    /// The journal's file name; each snapshot's name starts with it.
    prefix: String,
}

impl SnapshotFiles {
    /// The snapshot files beside the journal at `journal`.
    pub fn beside(journal: &Path) -> Self {
        let dir = match journal.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = journal
            .file_name()
            .map_or_else(|| "engine".into(), |n| n.to_string_lossy().into_owned());
        Self {
            dir,
            prefix: format!("{name}.snapshot."),
        }
    }

    /// A new name for a snapshot that covers the journal through entry `through`.
    pub fn name(&self, through: i64) -> String {
        use std::hash::{BuildHasher, Hasher};
        let nonce = std::hash::RandomState::new().build_hasher().finish();
        format!("{}{through}.{nonce:016x}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `bytes` as the snapshot named `name`, whole and synced before it has that name.
    /// Blocking: run it off the runtime's workers.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let done = self.path(name);
        let partial = self.path(&format!("{name}.partial"));
        let written = (|| {
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&partial, &done)?;
            // The rename is durable once the directory is.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        } else {
            crate::failpoint("engine.snapshot_written");
        }
        written
    }

    /// The snapshot named `name`, which must hold `bytes` bytes.
    pub fn read(&self, name: &str, bytes: u64) -> std::io::Result<Vec<u8>> {
        let content = std::fs::read(self.path(name))?;
        if content.len() as u64 != bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the snapshot {name} holds {} bytes, the journal says {bytes}",
                    content.len()
                ),
            ));
        }
        Ok(content)
    }

    /// Removes every snapshot file but `keep` (and the partial ones); the names removed.
    pub fn remove_all_but(&self, keep: Option<&str>) -> std::io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.prefix) && Some(name.as_str()) != keep {
                std::fs::remove_file(self.path(&name))?;
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("linkdrop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_snapshot_reads_back_and_only_at_its_size() {
        let files = SnapshotFiles::beside(&dir("snapshot-read").join("engine.sqlite"));
        let name = files.name(42);
        assert!(name.starts_with("engine.sqlite.snapshot.42."), "{name}");
        assert_ne!(files.name(42), name, "two snapshots never share a name");
        files.write(&name, b"state").unwrap();
        assert_eq!(files.read(&name, 5).unwrap(), b"state");
        let short = files.read(&name, 6).unwrap_err();
        assert_eq!(short.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn removing_strays_keeps_the_named_snapshot_and_the_journal() {
        let dir = dir("snapshot-strays");
        let journal = dir.join("engine.sqlite");
        std::fs::write(&journal, b"journal").unwrap();
        let files = SnapshotFiles::beside(&journal);
        let (old, current) = (files.name(1), files.name(2));
        files.write(&old, b"old").unwrap();
        files.write(&current, b"current").unwrap();
        let partial = format!("{}.partial", files.name(3));
        std::fs::write(files.path(&partial), b"cut").unwrap();
        let mut removed = files.remove_all_but(Some(&current)).unwrap();
        removed.sort();
        assert_eq!(removed, [old, partial]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["engine.sqlite".to_string(), current]);
    }
}

//! The journal: every write the engine makes, in order, in a SQLite file, committed before
//! the command's answer leaves (in groups: [`crate::commit`]). Opening the engine replays
//! it, so a restarted process has the state every answer was based on.
//!
//! WAL, with the durability of [`DataSync`]: `normal` (a commit survives the process being
//! killed at any moment, as the operating system has it, but may not survive the machine
//! losing power) or `full` (each commit is synced to the disk).
//!
//! The WAL is copied back into the database file (a checkpoint, which syncs the file) by a
//! connection of its own every [`CHECKPOINT_EVERY`], not by the commit that happens to fill
//! it: SQLite's automatic checkpoint runs inside that commit, and every answer waiting for
//! the commit waited for the disk too (the embedded backend's tail at half rate).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{ConnectOptions, Row};

use crate::entry::{encode, for_each_effect, for_each_effect_in, split_by_key};
use crate::keyspace::{Args, Ctx, Keyspace};
use crate::snapshot_file::SnapshotFiles;

/// How durable a journal commit is (`LINKDROP_DATA_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataSync {
    /// Survives the process, not the machine losing power (SQLite `synchronous=NORMAL`).
    #[default]
    Normal,
    /// Survives the machine losing power: every group commit is synced (`synchronous=FULL`).
    Full,
}

impl DataSync {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "normal" => Some(Self::Normal),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Full => "full",
        }
    }
}

/// How often the journal's WAL is checkpointed, apart from the commits.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

pub struct Journal {
    pool: SqlitePool,
    /// Reads the journal back (at start, after a refused commit, and for a compaction in
    /// the background while the writer goes on).
    reader: JournalReader,
    /// A connection of its own for checkpoints.
    checkpointer: SqlitePool,
    /// Checkpoints the WAL every [`CHECKPOINT_EVERY`] while the journal is open.
    _checkpoints: Option<Checkpoints>,
    /// The last entry the current snapshot covers; entries up to it are deleted a few at a
    /// time with the group commits that follow the switch, while `trimming`.
    covered: AtomicI64,
    trimming: AtomicBool,
}

/// Entries covered by the snapshot that one group commit deletes, at most: deleting them all
/// in the switch's transaction held group commits up for 0.1 s per 60 MB of entries.
const TRIM_PER_COMMIT: i64 = 16;

/// A snapshot file the journal names: it holds the state through entry `through`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub file: String,
    pub through: i64,
    pub bytes: u64,
}

/// The checkpointing task; it stops when the journal is dropped.
struct Checkpoints(tokio::task::JoinHandle<()>);

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies what the WAL holds into the database file, without waiting for the writer (nor
/// making it wait: PASSIVE).
async fn checkpoint(checkpointer: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(checkpointer)
        .await
        .map(|_| ())
}

impl Checkpoints {
    fn start(checkpointer: SqlitePool, every: Duration) -> Self {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = checkpoint(&checkpointer).await {
                    tracing::warn!(error = %e, "the engine journal could not checkpoint its WAL");
                }
            }
        }))
    }
}

impl Journal {
    /// Opens (creating) the journal at `path`, checkpointing every [`CHECKPOINT_EVERY`].
    pub async fn open(path: &Path, sync: DataSync) -> Result<Self, sqlx::Error> {
        Self::open_with(path, sync, Some(CHECKPOINT_EVERY)).await
    }

    /// Opens the journal; `checkpoint_every: None` leaves checkpoints to
    /// [`Journal::checkpoint`].
    async fn open_with(
        path: &Path,
        sync: DataSync,
        checkpoint_every: Option<Duration>,
    ) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                DataSync::Normal => SqliteSynchronous::Normal,
                DataSync::Full => SqliteSynchronous::Full,
            });
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS engine_journal (
                 seq     INTEGER PRIMARY KEY AUTOINCREMENT,
                 effects BLOB NOT NULL
             )",
        )
        .execute(&pool)
        .await?;
        // The snapshot the journal starts from (one row at most); the entries it covers are
        // no longer read, and are deleted with the commits that follow the switch to it.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS engine_snapshot (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 file    TEXT NOT NULL,
                 through INTEGER NOT NULL,
                 bytes   INTEGER NOT NULL
             )",
        )
        .execute(&pool)
        .await?;
        let checkpointer = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        // A replay reads its entries as it applies them, so the statement runs as long as
        // the replay does: not a slow statement to warn about.
        let reader_options = options.disable_statement_logging();
        let reader = JournalReader {
            pool: sqlx::pool::PoolOptions::new()
                .max_connections(1)
                .connect_with(reader_options)
                .await?,
            snapshots: SnapshotFiles::beside(path),
        };
        let checkpoints =
            checkpoint_every.map(|every| Checkpoints::start(checkpointer.clone(), every));
        let journal = Self {
            pool,
            reader,
            checkpointer,
            _checkpoints: checkpoints,
            covered: AtomicI64::new(0),
            trimming: AtomicBool::new(false),
        };
        journal.remove_strays().await?;
        if let Some(snapshot) = journal.snapshot().await? {
            journal.trim_through(snapshot.through);
        }
        Ok(journal)
    }

    /// Removes the snapshot files the journal does not name (left by a crash).
    async fn remove_strays(&self) -> Result<(), sqlx::Error> {
        let current = self.snapshot().await?;
        let removed = self
            .reader
            .snapshots
            .remove_all_but(current.as_ref().map(|s| s.file.as_str()))?;
        if !removed.is_empty() {
            tracing::info!(
                ?removed,
                "removed snapshot files the engine journal does not name"
            );
        }
        Ok(())
    }

    /// The snapshot the journal starts from, if any.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, sqlx::Error> {
        self.reader.snapshot().await
    }

    /// The last entry appended so far (0: none ever), whether or not a snapshot covers it.
    pub async fn last_entry(&self) -> Result<i64, sqlx::Error> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'engine_journal'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Where snapshots are written.
    pub fn snapshot_files(&self) -> &SnapshotFiles {
        &self.reader.snapshots
    }

    /// A reader of the journal that works beside its writer.
    pub fn reader(&self) -> &JournalReader {
        &self.reader
    }

    /// Checkpoints the WAL now.
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        checkpoint(&self.checkpointer).await
    }

    /// Appends the effects of several commands (or scripts), each as one entry, in one
    /// transaction: all of them are journaled, or none. The same transaction deletes a few of
    /// the entries the snapshot covers, while some are left. The bytes appended.
    pub async fn append_group(&self, entries: &[&[Args]]) -> Result<u64, sqlx::Error> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut bytes = 0;
        for effects in entries {
            let entry = encode(effects);
            bytes += entry.len() as u64;
            sqlx::query("INSERT INTO engine_journal (effects) VALUES (?)")
                .bind(entry)
                .execute(&mut *tx)
                .await?;
        }
        let trimming = self.trimming.load(Ordering::Relaxed);
        let trimmed = if trimming {
            sqlx::query(
                "DELETE FROM engine_journal WHERE seq IN
                     (SELECT seq FROM engine_journal WHERE seq <= ? ORDER BY seq LIMIT ?)",
            )
            .bind(self.covered.load(Ordering::Relaxed))
            .bind(TRIM_PER_COMMIT)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            0
        };
        tx.commit().await?;
        if trimming && (trimmed as i64) < TRIM_PER_COMMIT {
            self.trimming.store(false, Ordering::Relaxed);
        }
        Ok(bytes)
    }

    /// Deletes the entries through `through` with the group commits to come.
    fn trim_through(&self, through: i64) {
        self.covered.store(through, Ordering::Relaxed);
        self.trimming.store(true, Ordering::Relaxed);
    }

    /// Replaces every entry with a snapshot of `keyspace` and gives the space back to the
    /// file system: at start, before serving. The snapshot's size in bytes.
    pub async fn compact(&self, keyspace: &mut Keyspace, now_ms: i64) -> Result<u64, sqlx::Error> {
        let started = std::time::Instant::now();
        let through = self.last_entry().await?;
        let bytes = keyspace.snapshot(now_ms).finish();
        let snapshot_ms = started.elapsed().as_millis() as u64;
        let file = self.reader.snapshots.name(through);
        self.reader.snapshots.write(&file, &bytes)?;
        let snapshot = Snapshot {
            file,
            through,
            bytes: bytes.len() as u64,
        };
        self.switch_to(&snapshot).await?;
        sqlx::query("DELETE FROM engine_journal WHERE seq <= ?")
            .bind(through)
            .execute(&self.pool)
            .await?;
        sqlx::query("VACUUM").execute(&self.pool).await?;
        tracing::info!(
            bytes = snapshot.bytes,
            snapshot_ms,
            written_ms = started.elapsed().as_millis() as u64 - snapshot_ms,
            "the engine journal was compacted"
        );
        Ok(snapshot.bytes)
    }

    /// Makes `snapshot` (written and synced) the journal's start, in one small transaction;
    /// the file it replaces is removed in the background (unlinking hundreds of megabytes
    /// takes a while). The entries it covers are no longer read, and are deleted with the
    /// group commits that follow.
    pub async fn switch_to(&self, snapshot: &Snapshot) -> Result<(), sqlx::Error> {
        let previous = self.snapshot().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO engine_snapshot (id, file, through, bytes) VALUES (1, ?, ?, ?)",
        )
        .bind(&snapshot.file)
        .bind(snapshot.through)
        .bind(snapshot.bytes as i64)
        .execute(&self.pool)
        .await?;
        self.trim_through(snapshot.through);
        crate::failpoint("engine.snapshot_switched");
        if let Some(previous) = previous {
            let path = self.reader.snapshots.path(&previous.file);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_file(&path) {
                    // Left for the next start to remove.
                    tracing::warn!(error = %e, path = %path.display(), "the engine could not remove its previous snapshot file");
                }
            });
        }
        Ok(())
    }

    /// A keyspace with every journaled write applied, and what that took (the snapshot
    /// applied on as many threads as the machine has cores, up to four).
    pub async fn replay(&self, now_ms: i64) -> Result<(Keyspace, Replayed), sqlx::Error> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.reader.replay(now_ms, None, cores.min(4)).await
    }
}

/// Reads the journal back: the snapshot file it names, then the entries after it.
#[derive(Clone)]
pub struct JournalReader {
    pool: SqlitePool,
    snapshots: SnapshotFiles,
}

impl JournalReader {
    /// The snapshot the journal starts from, if any.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, sqlx::Error> {
        let row = sqlx::query("SELECT file, through, bytes FROM engine_snapshot WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Snapshot {
                file: row.try_get(0)?,
                through: row.try_get(1)?,
                bytes: row.try_get::<i64, _>(2)? as u64,
            })
        })
        .transpose()
    }

    /// A keyspace with the journal's writes applied — all of them, or those of the entries
    /// up to `through` — and what that took. The snapshot is applied on `threads` threads,
    /// its keys shared out among them; then the entries after it are read one at a time and
    /// their writes applied from buffers reused from one write to the next: a replay
    /// allocates what the keyspace keeps, little more.
    pub async fn replay(
        &self,
        now_ms: i64,
        through: Option<i64>,
        threads: usize,
    ) -> Result<(Keyspace, Replayed), sqlx::Error> {
        use futures::TryStreamExt;
        let started = std::time::Instant::now();
        let mut keyspace = Keyspace::default();
        let mut args = Args::new();
        let mut applying = std::time::Duration::ZERO;
        let snapshot = self.snapshot().await?;
        if let Some(snapshot) = &snapshot {
            let content = self.snapshots.read(&snapshot.file, snapshot.bytes)?;
            let applied = std::time::Instant::now();
            keyspace = apply_snapshot(&content, now_ms, threads)?;
            applying += applied.elapsed();
        }
        let after = snapshot.as_ref().map_or(0, |s| s.through);
        let mut rows = sqlx::query(
            "SELECT effects FROM engine_journal WHERE seq > ? AND seq <= ? ORDER BY seq",
        )
        .bind(after)
        .bind(through.unwrap_or(i64::MAX))
        .fetch(&self.pool);
        let (mut entries, mut bytes) = (0, 0);
        while let Some(row) = rows.try_next().await? {
            let blob: &[u8] = row.try_get(0)?;
            bytes += blob.len() as u64;
            let applied = std::time::Instant::now();
            apply(&mut keyspace, blob, &mut args, now_ms)?;
            applying += applied.elapsed();
            entries += 1;
        }
        let applied_ms = applying.as_millis() as u64;
        let replayed = Replayed {
            snapshot_bytes: snapshot.map_or(0, |s| s.bytes),
            entries,
            bytes,
            read_ms: (started.elapsed().as_millis() as u64).saturating_sub(applied_ms),
            applied_ms,
        };
        Ok((keyspace, replayed))
    }
}

/// The keyspace a snapshot rebuilds, its keys applied on `threads` threads.
fn apply_snapshot(snapshot: &[u8], now_ms: i64, threads: usize) -> Result<Keyspace, sqlx::Error> {
    let groups = split_by_key(snapshot, threads)
        .ok_or_else(|| sqlx::Error::Decode("a snapshot is truncated".into()))?;
    let built: Vec<Keyspace> = std::thread::scope(|scope| {
        let workers: Vec<_> = groups
            .iter()
            .map(|spans| {
                scope.spawn(move || {
                    let mut keyspace = Keyspace::default();
                    for_each_effect_in(spans, &mut Args::new(), |effect| {
                        apply_effect(&mut keyspace, effect, now_ms)
                    });
                    keyspace
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a snapshot's keys apply without panicking"))
            .collect()
    });
    let mut keyspace = Keyspace::default();
    for part in built {
        keyspace.merge(part);
    }
    Ok(keyspace)
}

/// Applies one journaled write.
fn apply_effect(keyspace: &mut Keyspace, effect: &[Vec<u8>], now_ms: i64) {
    let mut ctx = Ctx {
        now_ms,
        replaying: true,
        ..Ctx::default()
    };
    if let Err(e) = keyspace.execute(&mut ctx, effect) {
        // Replaying what once succeeded cannot fail; say so if it ever does.
        tracing::error!(code = e.code, message = %e.message, "a journaled write failed on replay");
    }
}

/// Applies the writes of one entry (or snapshot) to `keyspace`.
fn apply(
    keyspace: &mut Keyspace,
    entry: &[u8],
    args: &mut Args,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let walked = for_each_effect(entry, args, |effect| apply_effect(keyspace, effect, now_ms));
    walked.ok_or_else(|| sqlx::Error::Decode("a journal entry is truncated".into()))
}

/// What reading the journal back took.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    /// The snapshot's bytes (0: none).
    pub snapshot_bytes: u64,
    /// Entries read after the snapshot.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Milliseconds reading the snapshot and the entries.
    pub read_ms: u64,
    /// Milliseconds applying their writes.
    pub applied_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_journal(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("linkdrop-{name}-{}.sqlite", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        path
    }

    #[tokio::test]
    async fn commits_leave_the_wal_to_the_checkpointer() {
        let path = temp_journal("checkpoints");
        let journal = Journal::open_with(&path, DataSync::Normal, None)
            .await
            .unwrap();
        let db_bytes = || std::fs::metadata(&path).unwrap().len();
        let empty = db_bytes();
        // 8 MiB of entries: eight times past SQLite's automatic checkpoint (1,000 pages).
        let entry = vec![vec![b"SET".to_vec(), b"k".to_vec(), vec![7u8; 4096]]];
        for _ in 0..200 {
            let group: Vec<&[Args]> = (0..10).map(|_| entry.as_slice()).collect();
            journal.append_group(&group).await.unwrap();
        }
        assert_eq!(
            db_bytes(),
            empty,
            "a commit copied the WAL into the file itself"
        );
        journal.checkpoint().await.unwrap();
        assert!(
            db_bytes() > 8_000_000,
            "the checkpoint copied the WAL: {} bytes",
            db_bytes()
        );
        let (_, replayed) = journal.replay(0).await.unwrap();
        assert_eq!(replayed.entries, 2_000);
        assert!(replayed.bytes > 8_000_000, "{replayed:?}");
    }
}

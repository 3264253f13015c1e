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
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use crate::entry::{Entry, encode, for_each_effect};
use crate::keyspace::{Args, Ctx, Keyspace};

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
    /// A connection of its own for checkpoints.
    checkpointer: SqlitePool,
    /// Checkpoints the WAL every [`CHECKPOINT_EVERY`] while the journal is open.
    _checkpoints: Option<Checkpoints>,
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
        let checkpointer = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let checkpoints =
            checkpoint_every.map(|every| Checkpoints::start(checkpointer.clone(), every));
        Ok(Self {
            pool,
            checkpointer,
            _checkpoints: checkpoints,
        })
    }

    /// Checkpoints the WAL now.
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        checkpoint(&self.checkpointer).await
    }

    /// Appends the effects of several commands (or scripts), each as one entry, in one
    /// transaction: all of them are journaled, or none. The bytes appended.
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
        tx.commit().await?;
        Ok(bytes)
    }

    /// Replaces every entry with one that rebuilds `keyspace` (its [`Keyspace::snapshot`])
    /// and gives the space back to the file system: at start, before serving.
    /// The snapshot's size in bytes.
    pub async fn compact(&self, keyspace: &mut Keyspace, now_ms: i64) -> Result<u64, sqlx::Error> {
        let started = std::time::Instant::now();
        let snapshot = keyspace.snapshot(now_ms);
        let snapshot_ms = started.elapsed().as_millis() as u64;
        let bytes = self.replace_with(snapshot).await?;
        sqlx::query("VACUUM").execute(&self.pool).await?;
        tracing::info!(
            bytes,
            snapshot_ms,
            written_ms = started.elapsed().as_millis() as u64 - snapshot_ms,
            "the engine journal was compacted"
        );
        Ok(bytes)
    }

    /// Replaces every entry with `snapshot`, in one transaction (while serving: the file's
    /// free pages are reused by the entries that follow). The snapshot's size in bytes.
    pub async fn replace_with(&self, snapshot: Entry) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM engine_journal")
            .execute(&mut *tx)
            .await?;
        let empty = snapshot.is_empty();
        let bytes = snapshot.finish();
        if !empty {
            sqlx::query("INSERT INTO engine_journal (effects) VALUES (?)")
                .bind(&bytes)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(bytes.len() as u64)
    }

    /// A keyspace with every journaled write applied, and what that took. Entries are read
    /// one at a time and their writes applied from buffers reused from one write to the
    /// next: a replay allocates what the keyspace keeps, little more.
    pub async fn replay(&self, now_ms: i64) -> Result<(Keyspace, Replayed), sqlx::Error> {
        use futures::TryStreamExt;
        let started = std::time::Instant::now();
        let mut rows =
            sqlx::query("SELECT effects FROM engine_journal ORDER BY seq").fetch(&self.pool);
        let mut keyspace = Keyspace::default();
        let (mut entries, mut applying, mut args) = (0, std::time::Duration::ZERO, Args::new());
        let (mut first_bytes, mut bytes) = (0, 0);
        while let Some(row) = rows.try_next().await? {
            let blob: &[u8] = row.try_get(0)?;
            if entries == 0 {
                first_bytes = blob.len() as u64;
            }
            bytes += blob.len() as u64;
            let applied = std::time::Instant::now();
            let walked = for_each_effect(blob, &mut args, |effect| {
                let mut ctx = Ctx {
                    now_ms,
                    replaying: true,
                    ..Ctx::default()
                };
                if let Err(e) = keyspace.execute(&mut ctx, effect) {
                    // Replaying what once succeeded cannot fail; say so if it ever does.
                    tracing::error!(code = e.code, message = %e.message, "a journaled write failed on replay");
                }
            });
            if walked.is_none() {
                return Err(sqlx::Error::Decode("a journal entry is truncated".into()));
            }
            applying += applied.elapsed();
            entries += 1;
        }
        let applied_ms = applying.as_millis() as u64;
        let replayed = Replayed {
            entries,
            first_bytes,
            bytes,
            read_ms: (started.elapsed().as_millis() as u64).saturating_sub(applied_ms),
            applied_ms,
        };
        Ok((keyspace, replayed))
    }
}

/// What reading the journal back took.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    /// Entries read (a snapshot counts as one).
    pub entries: u64,
    /// The first entry's bytes (the last snapshot, once the journal was compacted).
    pub first_bytes: u64,
    /// Every entry's bytes.
    pub bytes: u64,
    /// Milliseconds reading them from SQLite.
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

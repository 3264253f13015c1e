//! Compaction while serving does not stop the journal: while a snapshot's file is being
//! written, commands go on being journaled and answered; once it is on disk the journal
//! switches to it, and a restart rebuilds every write, those made during the write included.
//!
//! The engine's `engine.snapshot_written` failpoint holds the snapshot's writer until the
//! test lets it go (in a binary of its own: the failpoint is global to the process).

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use linkdrop_engine::{Engine, JournalOptions};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::Notify;

/// Told when a snapshot's file is whole on disk and its writer is held.
fn snapshot_written() -> &'static Notify {
    static WRITTEN: OnceLock<Notify> = OnceLock::new();
    WRITTEN.get_or_init(Notify::new)
}

/// Whether held writers may go on.
static RELEASED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Holds the snapshot's writer (a blocking thread) at `engine.snapshot_written` until
/// [`release`].
fn hold_snapshot_writers(name: &str) {
    if name != "engine.snapshot_written" {
        return;
    }
    snapshot_written().notify_one();
    let (released, changed) = &RELEASED;
    let mut released = released.lock().unwrap();
    while !*released {
        released = changed.wait(released).unwrap();
    }
}

fn release() {
    let (released, changed) = &RELEASED;
    *released.lock().unwrap() = true;
    changed.notify_all();
}

fn journal_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("compaction")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("engine.sqlite")
}

async fn set(engine: &Engine, key: &str, value: &str) {
    let mut engine = engine.clone();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut engine)
        .await
        .unwrap();
}

async fn get(engine: &Engine, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut engine.clone())
        .await
        .unwrap()
}

/// The entries in the journal, those through `through` of them, and the last entry its
/// snapshot covers.
async fn journal_rows(path: &Path, through: i64) -> (i64, i64, Option<i64>) {
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let entries = sqlx::query_scalar("SELECT count(*) FROM engine_journal")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let up_to = sqlx::query_scalar("SELECT count(*) FROM engine_journal WHERE seq <= ?")
        .bind(through)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let through = sqlx::query_scalar("SELECT through FROM engine_snapshot")
        .fetch_optional(&mut db)
        .await
        .unwrap();
    (entries, up_to, through)
}

fn snapshot_files(path: &Path) -> Vec<String> {
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snapshot."))
        .collect()
}

#[tokio::test]
async fn commands_are_journaled_and_answered_while_a_snapshot_is_written() {
    linkdrop_engine::set_failpoint(hold_snapshot_writers);
    let path = journal_path("while-written");
    let options = JournalOptions {
        compact_after_bytes: 1000,
        ..JournalOptions::default()
    };
    let engine = Engine::open(&path, options).await.unwrap();
    let value = "v".repeat(40);
    // About 60 bytes an entry: the 17th write or so starts a compaction, whose writer is
    // then held; every write after it is answered while it is held.
    for i in 0..100 {
        set(&engine, &format!("k{i}"), &value).await;
    }
    snapshot_written().notified().await;
    let (entries, _, through) = journal_rows(&path, 0).await;
    assert_eq!(
        entries, 100,
        "every write is journaled; none is covered yet"
    );
    assert_eq!(through, None, "the journal does not name the snapshot yet");
    assert_eq!(
        snapshot_files(&path).len(),
        1,
        "the snapshot's file is written"
    );

    release();
    engine.compacted().await;
    let (_, _, through) = journal_rows(&path, 0).await;
    let through = through.expect("the journal starts from the snapshot");
    assert!(
        (1..50).contains(&through),
        "the snapshot covers the writes before it started: {through}"
    );
    assert_eq!(snapshot_files(&path).len(), 1);

    // The entries it covers go with the commits that follow, sixteen each; the later ones
    // stay.
    let more = (through + 15) / 16 + 1;
    for i in 100..100 + more {
        set(&engine, &format!("k{i}"), &value).await;
    }
    let (entries, covered_left, _) = journal_rows(&path, through).await;
    assert_eq!(
        covered_left, 0,
        "every entry the snapshot covers is deleted"
    );
    assert_eq!(entries, 100 + more - through);

    drop(engine);
    let reopened = Engine::open(&path, options).await.unwrap();
    for i in 0..100 {
        assert_eq!(
            get(&reopened, &format!("k{i}")).await.as_deref(),
            Some(value.as_str()),
            "k{i}"
        );
    }
}

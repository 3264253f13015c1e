//! The journal's group commit: commands that arrive together share one transaction, none is
//! answered before its writes are on disk, a failed transaction loses exactly the commands
//! that were waiting on it (and they are told), and the journal stays bounded while serving.

use std::path::{Path, PathBuf};

use futures::future::join_all;
use linkdrop_engine::{Engine, JournalOptions};
use redis::{RedisResult, Value};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

fn journal_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("group_commit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

async fn run(engine: &Engine, args: &[&str]) -> RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let mut engine = engine.clone();
    cmd.query_async(&mut engine).await
}

async fn get(engine: &Engine, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut engine.clone())
        .await
        .unwrap()
}

/// A second connection to the journal file, as an operator's `sqlite3` would open it.
async fn beside(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// The entries after the snapshot (those it covers are deleted a few at a time later).
const AFTER_SNAPSHOT: &str =
    "WHERE seq > coalesce((SELECT through FROM engine_snapshot), 0) ORDER BY seq";

async fn entries(path: &Path) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM engine_journal {AFTER_SNAPSHOT}"
    ))
    .fetch_one(&mut beside(path).await)
    .await
    .unwrap()
}

/// The size of the snapshot the journal starts from, if it has one.
async fn snapshot_bytes(path: &Path) -> Option<i64> {
    sqlx::query_scalar("SELECT bytes FROM engine_snapshot")
        .fetch_optional(&mut beside(path).await)
        .await
        .unwrap()
}

/// Each entry's size in bytes, in order (the entries after the snapshot).
async fn entry_sizes(path: &Path) -> Vec<u64> {
    sqlx::query_scalar(&format!(
        "SELECT length(effects) FROM engine_journal {AFTER_SNAPSHOT}"
    ))
    .fetch_all(&mut beside(path).await)
    .await
    .unwrap()
}

// One thread: the committer runs only once every command below has run and is waiting, so
// all of them are queued for its first transaction.
#[tokio::test(flavor = "current_thread")]
async fn commands_that_arrive_together_share_one_commit_and_all_survive_a_restart() {
    let path = journal_path("together");
    let engine = Engine::open(&path, JournalOptions::default())
        .await
        .unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let answers = join_all(keys.iter().map(|k| {
        let engine = engine.clone();
        async move { run(&engine, &["SET", k, "v"]).await }
    }))
    .await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(engine.journal_commits(), 1);
    assert_eq!(entries(&path).await, 50);

    let reopened = Engine::open(&path, JournalOptions::default())
        .await
        .unwrap();
    for k in &keys {
        assert_eq!(get(&reopened, k).await.as_deref(), Some("v"), "{k}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_commit_fails_every_command_waiting_on_it_and_keeps_none_of_their_writes() {
    let path = journal_path("refused");
    let engine = Engine::open(&path, JournalOptions::default())
        .await
        .unwrap();
    run(&engine, &["SET", "a", "1"]).await.unwrap();

    // The disk refuses the next transaction (as a full disk would).
    let mut operator = beside(&path).await;
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON engine_journal
         BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
    )
    .execute(&mut operator)
    .await
    .unwrap();
    let answers = join_all([
        run(&engine, &["SET", "a", "2"]),
        run(&engine, &["INCR", "b"]),
        // A read that ran after those writes would answer from them: it fails with them.
        run(&engine, &["GET", "a"]),
    ])
    .await;
    assert!(answers.iter().all(Result::is_err), "{answers:?}");

    sqlx::query("DROP TRIGGER refuse")
        .execute(&mut operator)
        .await
        .unwrap();
    assert_eq!(get(&engine, "a").await.as_deref(), Some("1"));
    assert_eq!(get(&engine, "b").await, None);
    run(&engine, &["SET", "c", "3"]).await.unwrap();

    let reopened = Engine::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(get(&reopened, "a").await.as_deref(), Some("1"));
    assert_eq!(get(&reopened, "b").await, None);
    assert_eq!(get(&reopened, "c").await.as_deref(), Some("3"));
}

#[tokio::test(flavor = "current_thread")]
async fn the_journal_is_compacted_while_serving_and_still_rebuilds_the_state() {
    let path = journal_path("bounded");
    let options = JournalOptions {
        compact_after_bytes: 1000,
        ..JournalOptions::default()
    };
    let engine = Engine::open(&path, options).await.unwrap();
    for i in 0..400 {
        run(&engine, &["INCR", "counter"]).await.unwrap();
        run(
            &engine,
            &["SET", &format!("key{}", i % 10), &format!("{i:03}")],
        )
        .await
        .unwrap();
        // Each compaction ends before the next write (tests/compaction.rs has writes
        // going on while one is under way).
        engine.compacted().await;
    }
    // 800 writes of about 30 bytes each; compaction keeps a snapshot and less than one
    // round's worth of entries after it.
    let snapshot = snapshot_bytes(&path).await.expect("a snapshot");
    assert!(
        snapshot < 500,
        "the snapshot holds 11 keys: {snapshot} bytes"
    );
    let sizes = entry_sizes(&path).await;
    let after_snapshot: u64 = sizes.iter().sum();
    assert!(
        after_snapshot < 1000,
        "{after_snapshot} bytes after the snapshot"
    );
    assert!(sizes.len() < 40, "{} entries", sizes.len());

    let reopened = Engine::open(&path, options).await.unwrap();
    assert_eq!(get(&reopened, "counter").await.as_deref(), Some("400"));
    for i in 390..400 {
        assert_eq!(
            get(&reopened, &format!("key{}", i % 10)).await,
            Some(format!("{i:03}"))
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_start_compacts_only_a_journal_longer_than_serving_lets_it_grow() {
    let path = journal_path("start");
    let roomy = JournalOptions {
        compact_after_bytes: 1 << 20,
        ..JournalOptions::default()
    };
    let set = |i: usize| ["SET".to_string(), "k".to_string(), format!("{i:02}")];
    let engine = Engine::open(&path, roomy).await.unwrap();
    for i in 0..30 {
        let args = set(i);
        run(&engine, &args.each_ref().map(String::as_str))
            .await
            .unwrap();
    }
    drop(engine);
    let sizes = entry_sizes(&path).await;
    assert_eq!(sizes.len(), 30);
    // Every write is an entry of the same size.
    let entry = sizes[0];
    assert!(sizes.iter().all(|s| *s == entry), "{sizes:?}");

    // Within the bound: the start replays and leaves the journal as it is.
    let engine = Engine::open(&path, roomy).await.unwrap();
    assert_eq!(entries(&path).await, 30);
    assert_eq!(get(&engine, "k").await.as_deref(), Some("29"));
    drop(engine);

    // Beyond it (30 entries, 20 allowed): compacted at start, to the snapshot alone.
    let tight = JournalOptions {
        compact_after_bytes: 20 * entry,
        ..JournalOptions::default()
    };
    let engine = Engine::open(&path, tight).await.unwrap();
    assert_eq!(entries(&path).await, 0);
    assert!(snapshot_bytes(&path).await.is_some());
    assert_eq!(get(&engine, "k").await.as_deref(), Some("29"));
    drop(engine);

    // The committer counts from the bytes it found: 15 entries' worth, so the 5th write
    // after the start reaches 20 and starts a compaction; the 6th and 7th are journaled after
    // the snapshot.
    let path = journal_path("counting");
    let engine = Engine::open(&path, roomy).await.unwrap();
    for i in 0..15 {
        let args = set(i);
        run(&engine, &args.each_ref().map(String::as_str))
            .await
            .unwrap();
    }
    drop(engine);
    let engine = Engine::open(&path, tight).await.unwrap();
    assert_eq!(entries(&path).await, 15);
    for i in 15..22 {
        let args = set(i);
        run(&engine, &args.each_ref().map(String::as_str))
            .await
            .unwrap();
    }
    engine.compacted().await;
    assert!(snapshot_bytes(&path).await.is_some());
    assert_eq!(entries(&path).await, 2, "the 6th and 7th writes");
    assert_eq!(get(&engine, "k").await.as_deref(), Some("21"));
}

#[tokio::test(flavor = "current_thread")]
async fn after_a_start_the_bound_is_twice_the_snapshot_found() {
    let path = journal_path("bound");
    let roomy = JournalOptions {
        compact_after_bytes: 1 << 20,
        ..JournalOptions::default()
    };
    let value = "v".repeat(100);
    let engine = Engine::open(&path, roomy).await.unwrap();
    for i in 0..10 {
        run(&engine, &["SET", &format!("k{i}"), &value])
            .await
            .unwrap();
    }
    drop(engine);

    // 100 bytes allowed: the start compacts the ten writes into a snapshot of over 1,000.
    let tight = JournalOptions {
        compact_after_bytes: 100,
        ..JournalOptions::default()
    };
    let engine = Engine::open(&path, tight).await.unwrap();
    let snapshot = snapshot_bytes(&path).await.expect("a snapshot");
    assert!(snapshot > 1000, "{snapshot} bytes");
    assert_eq!(entries(&path).await, 0);
    // A write of about 130 bytes is within twice the snapshot: no compaction.
    run(&engine, &["SET", "k0", &value]).await.unwrap();
    assert_eq!(entries(&path).await, 1);
    drop(engine);

    // Nor after a restart that finds the snapshot and one write after it.
    let engine = Engine::open(&path, tight).await.unwrap();
    assert_eq!(entries(&path).await, 1);
    run(&engine, &["SET", "k1", &value]).await.unwrap();
    assert_eq!(entries(&path).await, 2);
    assert_eq!(get(&engine, "k9").await, Some(value));
}

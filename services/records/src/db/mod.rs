//! Where the records are kept — PostgreSQL on the stack, SQLite on the embedded backend
//! (issue 9) — and the transactions over them, with the wake-ups they send when they
//! commit ([`Tx::notify_after_commit`], [`Db::listen`]).
//!
//! Every area of the records has a `pg.rs` and a `sqlite.rs` behind its `mod.rs`; the
//! dialect is chosen in one place, [`dispatch!`].

mod notify;
#[cfg(postgres)]
mod pg;

use sqlx::sqlite::SqlitePool;
use sqlx::{PgConnection, PgPool, SqliteConnection};

use notify::Bells;
pub use notify::Listener;

/// Where records are kept. Cheap to clone (both hold a pool).
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// One value per dialect: what [`dispatch!`] matches on.
pub(crate) enum Dialect<P, S> {
    Postgres(P),
    Sqlite(S),
}

/// Calls the function `$f` of the calling area's `pg` or `sqlite` module — the dialect of
/// `$on`, a [`Db`] (its pool is passed) or a [`Tx`] (its connection is passed) — with the
/// other arguments, and awaits it: the one dispatch point of the records.
///
/// A dialect compiled out for scripts/sqlx-prepare (see build.rs) is unreachable.
macro_rules! dispatch {
    ($on:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $on.dialect() {
            #[cfg(postgres)]
            $crate::db::Dialect::Postgres(on) => pg::$f(on, $($arg),*).await,
            #[cfg(sqlite)]
            $crate::db::Dialect::Sqlite(on) => sqlite::$f(on, $($arg),*).await,
            #[allow(unreachable_patterns)]
            _ => unreachable!("the records were compiled with one dialect only (build.rs)"),
        }
    };
}
pub(crate) use dispatch;

impl Db {
    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two transactions that read before writing cannot deadlock; the other waits (busy
    /// timeout) instead of failing.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let conn = match self {
            Db::Postgres(pool) => Dialect::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => {
                Dialect::Sqlite((pool.begin_with("BEGIN IMMEDIATE").await?, Bells::of(pool)))
            }
        };
        Ok(Tx {
            conn,
            notify: Vec::new(),
        })
    }

    pub(crate) fn dialect(&self) -> Dialect<&PgPool, &SqlitePool> {
        match self {
            Db::Postgres(pool) => Dialect::Postgres(pool),
            Db::Sqlite(pool) => Dialect::Sqlite(pool),
        }
    }

    /// Wakes the listeners of `channel` now (outside a transaction).
    pub async fn notify(&self, channel: &'static str) -> Result<(), sqlx::Error> {
        match self {
            #[cfg(postgres)]
            Db::Postgres(pool) => pg::notify(pool, channel).await,
            Db::Sqlite(pool) => {
                Bells::of(pool).ring(channel);
                Ok(())
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("the records were compiled with one dialect only (build.rs)"),
        }
    }

    /// Listens on `channel`: woken by every commit that notified it, in any process on
    /// PostgreSQL (`LISTEN`), in this process on SQLite (where the embedded backend runs
    /// every role), on this database only. Notifications sent before this call are not
    /// heard.
    pub async fn listen(&self, channel: &'static str) -> Result<Listener, sqlx::Error> {
        match self {
            Db::Postgres(pool) => Listener::postgres(pool, channel).await,
            Db::Sqlite(pool) => Ok(Bells::of(pool).listen(channel)),
        }
    }
}

type PgTransaction = sqlx::Transaction<'static, sqlx::Postgres>;
type SqliteTransaction = sqlx::Transaction<'static, sqlx::Sqlite>;

/// A transaction on either backend, with the channels to notify once it commits.
pub struct Tx {
    conn: Dialect<PgTransaction, (SqliteTransaction, Bells)>,
    notify: Vec<&'static str>,
}

impl Tx {
    pub(crate) fn dialect(&mut self) -> Dialect<&mut PgConnection, &mut SqliteConnection> {
        match &mut self.conn {
            Dialect::Postgres(tx) => Dialect::Postgres(&mut **tx),
            Dialect::Sqlite((tx, _)) => Dialect::Sqlite(&mut **tx),
        }
    }

    /// Wakes the listeners of `channel` when this transaction commits, and not at all if
    /// it does not. Once per channel, however often it is asked.
    pub fn notify_after_commit(&mut self, channel: &'static str) {
        if !self.notify.contains(&channel) {
            self.notify.push(channel);
        }
    }

    /// Commits, then the listeners of the channels asked for wake.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.conn {
            #[cfg(postgres)]
            Dialect::Postgres(mut tx) => {
                // PostgreSQL delivers a NOTIFY when the transaction that sent it commits.
                for channel in &self.notify {
                    pg::notify(&mut *tx, channel).await?;
                }
                tx.commit().await
            }
            Dialect::Sqlite((tx, bells)) => {
                tx.commit().await?;
                for channel in self.notify {
                    bells.ring(channel);
                }
                Ok(())
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("the records were compiled with one dialect only (build.rs)"),
        }
    }
}

/// Opens (creating) the SQLite file of the embedded backend's records and migrates it.
/// WAL with `synchronous=NORMAL`: a commit survives the process being killed.
pub async fn open_sqlite(path: &std::path::Path) -> Result<SqlitePool, sqlx::Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = sqlx::pool::PoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    migrate_sqlite(&pool).await?;
    Ok(pool)
}

/// Applies the SQLite migrations (`schemas/migrations-sqlite`) that the file lacks.
pub async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../../schemas/migrations-sqlite")
        .run(pool)
        .await
}

/// A stored value that does not parse, as the error of the column it was read from: its
/// message names the column and the value.
pub(crate) fn undecodable(
    column: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(error),
    }
}

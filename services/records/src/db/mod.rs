//! The system of record: PostgreSQL on the stack, SQLite in the embedded backend (issue 9).
//! A store area keeps its queries in both dialects side by side, behind functions that take
//! a [`Db`] (or a [`Tx`] when they must commit together with other writes).

use sqlx::PgPool;
use sqlx::sqlite::SqlitePool;

/// Where records are kept. Cheap to clone (both hold a pool).
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Db {
    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two transactions that read before writing cannot deadlock; the other waits (busy
    /// timeout) instead of failing.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                wake_dispatchers: false,
            },
        })
    }
}

/// A transaction on either backend.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite {
        tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        /// Webhook deliveries were queued: wake the dispatcher once committed.
        wake_dispatchers: bool,
    },
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite {
                tx,
                wake_dispatchers,
            } => {
                tx.commit().await?;
                if wake_dispatchers {
                    webhook_due().notify_one();
                }
                Ok(())
            }
        }
    }
}

/// Rung when webhook deliveries became due on SQLite, where there is no `LISTEN/NOTIFY`:
/// the embedded backend's dispatcher runs in the same process. (On PostgreSQL the
/// dispatchers listen on the channel `webhook_due`.)
pub fn webhook_due() -> &'static tokio::sync::Notify {
    static DUE: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    DUE.get_or_init(tokio::sync::Notify::new)
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

/// API keys of hosts and merchants.
pub mod api_keys {
    use super::Db;

    /// A key to store: only its hash.
    pub struct NewKey<'a> {
        pub id: &'a str,
        pub key_hash: &'a str,
        pub role: &'a str,
        pub merchant_id: &'a str,
        pub created_at_ms: i64,
    }

    /// A stored key that is not revoked: its role and merchant.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ActiveKey {
        pub role: String,
        pub merchant_id: String,
    }

    pub async fn insert(db: &Db, key: &NewKey<'_>) -> Result<(), sqlx::Error> {
        match db {
            Db::Postgres(pool) => {
                sqlx::query!(
                    "INSERT INTO api_keys (id, key_hash, role, merchant_id, created_at_ms)
         VALUES ($1, $2, $3, $4, $5)",
                    key.id,
                    key.key_hash,
                    key.role,
                    key.merchant_id,
                    key.created_at_ms
                )
                .execute(pool)
                .await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO api_keys (id, key_hash, role, merchant_id, created_at_ms)
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(key.id)
                .bind(key.key_hash)
                .bind(key.role)
                .bind(key.merchant_id)
                .bind(key.created_at_ms)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// The key with this hash, unless it is unknown or revoked.
    pub async fn find_active(db: &Db, key_hash: &str) -> Result<Option<ActiveKey>, sqlx::Error> {
        Ok(match db {
            Db::Postgres(pool) => sqlx::query!(
                "SELECT role, merchant_id FROM api_keys WHERE key_hash = $1 AND revoked_at_ms IS NULL",
                key_hash
            )
            .fetch_optional(pool)
            .await?
            .map(|r| ActiveKey {
                role: r.role,
                merchant_id: r.merchant_id,
            }),
            Db::Sqlite(pool) => sqlx::query_as::<_, (String, String)>(
                "SELECT role, merchant_id FROM api_keys WHERE key_hash = ? AND revoked_at_ms IS NULL",
            )
            .bind(key_hash)
            .fetch_optional(pool)
            .await?
            .map(|(role, merchant_id)| ActiveKey { role, merchant_id }),
        })
    }
}

/// Live-stream rooms.
pub mod rooms {
    use super::Db;
    use linkdrop_domain::model::Room;

    type Row = (String, String, String, i64);

    fn room((id, title, merchant_id, created_at_ms): Row) -> Room {
        Room {
            id,
            title,
            merchant_id,
            created_at_ms,
        }
    }

    pub async fn insert(db: &Db, room: &Room) -> Result<(), sqlx::Error> {
        match db {
            Db::Postgres(pool) => {
                sqlx::query!(
                    "INSERT INTO rooms (id, title, merchant_id, created_at_ms) VALUES ($1, $2, $3, $4)",
                    room.id,
                    room.title,
                    room.merchant_id,
                    room.created_at_ms
                )
                .execute(pool)
                .await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO rooms (id, title, merchant_id, created_at_ms) VALUES (?, ?, ?, ?)",
                )
                .bind(&room.id)
                .bind(&room.title)
                .bind(&room.merchant_id)
                .bind(room.created_at_ms)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn find(db: &Db, room_id: &str) -> Result<Option<Room>, sqlx::Error> {
        Ok(match db {
            Db::Postgres(pool) => {
                sqlx::query_as!(
                    Room,
                    "SELECT id, title, merchant_id, created_at_ms FROM rooms WHERE id = $1",
                    room_id
                )
                .fetch_optional(pool)
                .await?
            }
            Db::Sqlite(pool) => sqlx::query_as::<_, Row>(
                "SELECT id, title, merchant_id, created_at_ms FROM rooms WHERE id = ?",
            )
            .bind(room_id)
            .fetch_optional(pool)
            .await?
            .map(room),
        })
    }

    /// The newest 200 rooms, of one merchant or of all.
    pub async fn list(db: &Db, merchant_id: Option<&str>) -> Result<Vec<Room>, sqlx::Error> {
        Ok(match db {
            Db::Postgres(pool) => {
                sqlx::query_as!(
                    Room,
                    "SELECT id, title, merchant_id, created_at_ms FROM rooms
         WHERE ($1::text IS NULL OR merchant_id = $1)
         ORDER BY id DESC LIMIT 200",
                    merchant_id
                )
                .fetch_all(pool)
                .await?
            }
            Db::Sqlite(pool) => sqlx::query_as::<_, Row>(
                "SELECT id, title, merchant_id, created_at_ms FROM rooms
                 WHERE (?1 IS NULL OR merchant_id = ?1)
                 ORDER BY id DESC LIMIT 200",
            )
            .bind(merchant_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(room)
            .collect(),
        })
    }
}

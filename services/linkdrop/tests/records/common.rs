//! What the checks of several areas share: SQL without binds on either backend, and a seed
//! of rooms, drops and webhook endpoints.

use linkdrop_domain::model::Room;
use linkdrop_records::db::Db;
use linkdrop_records::rooms;

pub const FCFS: &str = "drp_fcfs";
pub const LOTTERY: &str = "drp_lottery";
pub const OTHER: &str = "drp_other";
pub const ADMITTED: i64 = 1_700_000_000_000;

/// Runs `sql` (no binds: the same text works in both dialects).
pub async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e} ({db:?})"));
}

/// The rows `sql` selects (integer columns cast to BIGINT, which is 64-bit on both).
pub async fn rows<T>(db: &Db, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    match db {
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e} ({db:?})"))
}

/// A room, three drops (two of merchant `m_1`, one of `m_2`) and two endpoints of `m_1`:
/// one subscribed to everything, one to `order.paid` only, and a disabled one.
pub async fn seed(db: &Db) {
    rooms::insert(
        db,
        &Room {
            id: "room_1".into(),
            title: "Room".into(),
            merchant_id: "m_1".into(),
            created_at_ms: ADMITTED,
        },
    )
    .await
    .unwrap();
    for (id, merchant, policy) in [
        (FCFS, "m_1", "fcfs"),
        (LOTTERY, "m_1", "lottery"),
        (OTHER, "m_2", "fcfs"),
    ] {
        exec(
            db,
            &format!(
                "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                                    currency, stock, max_per_user, policy, pay_within_s,
                                    created_at_ms)
                 VALUES ('{id}', 'room_1', '{merchant}', 'sku', 'Drop', 'https://img', 1000,
                         'EUR', 10, 3, '{policy}', 600, {ADMITTED})"
            ),
        )
        .await;
    }
    let events = |list: &[&str]| match db {
        Db::Postgres(_) => format!("ARRAY[{}]", quoted(list)),
        Db::Sqlite(_) => format!("'{}'", serde_json::to_string(list).unwrap()),
    };
    let all = events(&linkdrop_domain::events::merchant_event::ALL);
    let paid = events(&["order.paid"]);
    for (id, events, disabled) in [
        ("wh_all", &all, "NULL"),
        ("wh_paid", &paid, "NULL"),
        ("wh_off", &all, "1"),
    ] {
        exec(
            db,
            &format!(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret,
                                                disabled_at_ms, created_at_ms)
                 VALUES ('{id}', 'm_1', 'https://hooks', {events}, 'sealed', {disabled},
                         {ADMITTED})"
            ),
        )
        .await;
    }
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

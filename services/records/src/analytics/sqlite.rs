//! Analytics on SQLite (the embedded backend): a batch is one statement per row, in one
//! transaction of the process that holds the file.

use sqlx::{SqliteConnection, SqlitePool};

use super::{Buyers, DropFigures, DropOrders, DropTally, RoomSecond, ViewerMix, ViewerSeen};

pub(super) async fn add_seconds(
    tx: &mut SqliteConnection,
    seconds: &[RoomSecond],
) -> Result<(), sqlx::Error> {
    for s in seconds {
        sqlx::query!(
            "INSERT INTO room_seconds (room_id, at_s, viewers, joins, leaves)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (room_id, at_s) DO UPDATE SET
                 viewers = viewers + excluded.viewers,
                 joins = joins + excluded.joins,
                 leaves = leaves + excluded.leaves",
            s.room_id,
            s.at_s,
            s.viewers,
            s.joins,
            s.leaves
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn add_viewers(
    tx: &mut SqliteConnection,
    viewers: &[ViewerSeen],
) -> Result<(), sqlx::Error> {
    for v in viewers {
        sqlx::query!(
            "INSERT INTO room_viewers (room_id, user_id, first_seen_ms) VALUES (?, ?, ?)
             ON CONFLICT (room_id, user_id) DO UPDATE SET first_seen_ms = excluded.first_seen_ms
             WHERE excluded.first_seen_ms < first_seen_ms",
            v.room_id,
            v.user_id,
            v.first_seen_ms
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn add_tallies(
    tx: &mut SqliteConnection,
    drops: &[DropTally],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for d in drops {
        sqlx::query!(
            "INSERT INTO drop_figures (drop_id, taps, countdown_reached, updated_at_ms)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (drop_id) DO UPDATE SET
                 taps = taps + excluded.taps,
                 countdown_reached = countdown_reached + excluded.countdown_reached,
                 updated_at_ms = excluded.updated_at_ms",
            d.drop_id,
            d.taps,
            d.countdown_reached,
            now_ms
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn record_launch(
    pool: &SqlitePool,
    drop_id: &str,
    launched_at_ms: i64,
    viewers: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO drop_figures (drop_id, launched_at_ms, viewers_at_launch, updated_at_ms)
         VALUES (?1, ?2, ?3, ?2)
         ON CONFLICT (drop_id) DO UPDATE SET
             launched_at_ms = COALESCE(launched_at_ms, excluded.launched_at_ms),
             viewers_at_launch = COALESCE(viewers_at_launch, excluded.viewers_at_launch),
             updated_at_ms = excluded.updated_at_ms",
        drop_id,
        launched_at_ms,
        viewers
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn seconds(
    pool: &SqlitePool,
    room_id: &str,
) -> Result<Vec<RoomSecond>, sqlx::Error> {
    sqlx::query_as!(
        RoomSecond,
        "SELECT room_id, at_s, viewers, joins, leaves FROM room_seconds
         WHERE room_id = ? ORDER BY at_s",
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn viewer_mix(pool: &SqlitePool, room_id: &str) -> Result<ViewerMix, sqlx::Error> {
    sqlx::query_as!(
        ViewerMix,
        r#"SELECT COUNT(*) AS "unique!: i64",
                  COALESCE(SUM(CASE WHEN EXISTS (
                      SELECT 1 FROM room_viewers p JOIN rooms pr ON pr.id = p.room_id
                      WHERE p.user_id = v.user_id AND p.room_id <> v.room_id
                        AND pr.merchant_id = r.merchant_id
                        AND p.first_seen_ms < v.first_seen_ms) THEN 1 ELSE 0 END), 0)
                      AS "returning!: i64"
           FROM room_viewers v JOIN rooms r ON r.id = v.room_id
           WHERE v.room_id = ?"#,
        room_id
    )
    .fetch_one(pool)
    .await
}

pub(super) async fn drop_figures(
    pool: &SqlitePool,
    room_id: &str,
) -> Result<Vec<DropFigures>, sqlx::Error> {
    sqlx::query_as!(
        DropFigures,
        r#"SELECT d.id AS "drop_id!", f.launched_at_ms AS "launched_at_ms?: i64",
                  f.viewers_at_launch AS "viewers_at_launch?: i64",
                  COALESCE(f.countdown_reached, 0) AS "countdown_reached!: i64",
                  COALESCE(f.taps, 0) AS "taps!: i64"
           FROM drops d LEFT JOIN drop_figures f ON f.drop_id = d.id
           WHERE d.room_id = ? ORDER BY d.id"#,
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn drop_orders(
    pool: &SqlitePool,
    room_id: &str,
) -> Result<Vec<DropOrders>, sqlx::Error> {
    sqlx::query_as!(
        DropOrders,
        r#"SELECT d.id AS "drop_id!",
                  COUNT(CASE WHEN o.status IN ('reserved', 'paid', 'expired', 'cancelled')
                        THEN 1 END) AS "reserved!: i64",
                  COUNT(CASE WHEN o.status = 'paid' THEN 1 END) AS "paid!: i64",
                  COUNT(CASE WHEN o.status = 'expired' THEN 1 END) AS "expired!: i64",
                  COUNT(DISTINCT CASE WHEN o.status = 'paid' THEN o.user_id END)
                      AS "buyers!: i64",
                  COUNT(DISTINCT CASE WHEN o.status = 'paid' AND EXISTS (
                      SELECT 1 FROM orders p JOIN drops pd ON pd.id = p.drop_id
                      WHERE p.merchant_id = o.merchant_id AND p.user_id = o.user_id
                        AND p.status = 'paid' AND pd.room_id <> d.room_id
                        AND p.admitted_at_ms < o.admitted_at_ms) THEN o.user_id END)
                      AS "repeat_buyers!: i64"
           FROM drops d LEFT JOIN orders o ON o.drop_id = d.id
           WHERE d.room_id = ? GROUP BY d.id ORDER BY d.id"#,
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn room_buyers(pool: &SqlitePool, room_id: &str) -> Result<Buyers, sqlx::Error> {
    sqlx::query_as!(
        Buyers,
        r#"SELECT COUNT(DISTINCT o.user_id) AS "unique!: i64",
                  COUNT(DISTINCT CASE WHEN EXISTS (
                      SELECT 1 FROM orders p JOIN drops pd ON pd.id = p.drop_id
                      WHERE p.merchant_id = o.merchant_id AND p.user_id = o.user_id
                        AND p.status = 'paid' AND pd.room_id <> d.room_id
                        AND p.admitted_at_ms < o.admitted_at_ms) THEN o.user_id END)
                      AS "repeat!: i64"
           FROM orders o JOIN drops d ON d.id = o.drop_id
           WHERE d.room_id = ? AND o.status = 'paid'"#,
        room_id
    )
    .fetch_one(pool)
    .await
}

pub(super) async fn delete_before(pool: &SqlitePool, before_ms: i64) -> Result<u64, sqlx::Error> {
    let before_s = before_ms.div_euclid(1000);
    let seconds = sqlx::query!("DELETE FROM room_seconds WHERE at_s < ?", before_s)
        .execute(pool)
        .await?;
    let viewers = sqlx::query!(
        "DELETE FROM room_viewers WHERE first_seen_ms < ?",
        before_ms
    )
    .execute(pool)
    .await?;
    let drops = sqlx::query!(
        "DELETE FROM drop_figures WHERE updated_at_ms < ?",
        before_ms
    )
    .execute(pool)
    .await?;
    Ok(seconds.rows_affected() + viewers.rows_affected() + drops.rows_affected())
}

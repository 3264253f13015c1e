//! Analytics on PostgreSQL: each batch is one statement per table (UNNEST of its columns).

use sqlx::{PgConnection, PgPool};

use super::{Buyers, DropFigures, DropOrders, DropTally, RoomSecond, ViewerMix, ViewerSeen};

pub(super) async fn add_seconds(
    tx: &mut PgConnection,
    seconds: &[RoomSecond],
) -> Result<(), sqlx::Error> {
    if seconds.is_empty() {
        return Ok(());
    }
    let rooms: Vec<&str> = seconds.iter().map(|s| s.room_id.as_str()).collect();
    let at: Vec<i64> = seconds.iter().map(|s| s.at_s).collect();
    let viewers: Vec<i64> = seconds.iter().map(|s| s.viewers).collect();
    let joins: Vec<i64> = seconds.iter().map(|s| s.joins).collect();
    let leaves: Vec<i64> = seconds.iter().map(|s| s.leaves).collect();
    sqlx::query!(
        "INSERT INTO room_seconds (room_id, at_s, viewers, joins, leaves)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
         ON CONFLICT (room_id, at_s) DO UPDATE SET
             viewers = room_seconds.viewers + excluded.viewers,
             joins = room_seconds.joins + excluded.joins,
             leaves = room_seconds.leaves + excluded.leaves",
        &rooms as &[&str],
        &at,
        &viewers,
        &joins,
        &leaves
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn add_viewers(
    tx: &mut PgConnection,
    viewers: &[ViewerSeen],
) -> Result<(), sqlx::Error> {
    if viewers.is_empty() {
        return Ok(());
    }
    let rooms: Vec<&str> = viewers.iter().map(|v| v.room_id.as_str()).collect();
    let users: Vec<&str> = viewers.iter().map(|v| v.user_id.as_str()).collect();
    let seen: Vec<i64> = viewers.iter().map(|v| v.first_seen_ms).collect();
    sqlx::query!(
        "INSERT INTO room_viewers (room_id, user_id, first_seen_ms)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
         ON CONFLICT (room_id, user_id) DO UPDATE SET first_seen_ms = excluded.first_seen_ms
         WHERE excluded.first_seen_ms < room_viewers.first_seen_ms",
        &rooms as &[&str],
        &users as &[&str],
        &seen
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn add_tallies(
    tx: &mut PgConnection,
    drops: &[DropTally],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if drops.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = drops.iter().map(|d| d.drop_id.as_str()).collect();
    let taps: Vec<i64> = drops.iter().map(|d| d.taps).collect();
    let reached: Vec<i64> = drops.iter().map(|d| d.countdown_reached).collect();
    sqlx::query!(
        "INSERT INTO drop_figures (drop_id, taps, countdown_reached, updated_at_ms)
         SELECT u.drop_id, u.taps, u.reached, $4
         FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS u(drop_id, taps, reached)
         ON CONFLICT (drop_id) DO UPDATE SET
             taps = drop_figures.taps + excluded.taps,
             countdown_reached = drop_figures.countdown_reached + excluded.countdown_reached,
             updated_at_ms = excluded.updated_at_ms",
        &ids as &[&str],
        &taps,
        &reached,
        now_ms
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn record_launch(
    pool: &PgPool,
    drop_id: &str,
    launched_at_ms: i64,
    viewers: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO drop_figures (drop_id, launched_at_ms, viewers_at_launch, updated_at_ms)
         VALUES ($1, $2, $3, $2)
         ON CONFLICT (drop_id) DO UPDATE SET
             launched_at_ms = COALESCE(drop_figures.launched_at_ms, excluded.launched_at_ms),
             viewers_at_launch =
                 COALESCE(drop_figures.viewers_at_launch, excluded.viewers_at_launch),
             updated_at_ms = excluded.updated_at_ms",
        drop_id,
        launched_at_ms,
        viewers
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn seconds(pool: &PgPool, room_id: &str) -> Result<Vec<RoomSecond>, sqlx::Error> {
    sqlx::query_as!(
        RoomSecond,
        "SELECT room_id, at_s, viewers, joins, leaves FROM room_seconds
         WHERE room_id = $1 ORDER BY at_s",
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn viewer_mix(pool: &PgPool, room_id: &str) -> Result<ViewerMix, sqlx::Error> {
    sqlx::query_as!(
        ViewerMix,
        r#"SELECT COUNT(*) AS "unique!",
                  COUNT(*) FILTER (WHERE EXISTS (
                      SELECT 1 FROM room_viewers p JOIN rooms pr ON pr.id = p.room_id
                      WHERE p.user_id = v.user_id AND p.room_id <> v.room_id
                        AND pr.merchant_id = r.merchant_id
                        AND p.first_seen_ms < v.first_seen_ms)) AS "returning!"
           FROM room_viewers v JOIN rooms r ON r.id = v.room_id
           WHERE v.room_id = $1"#,
        room_id
    )
    .fetch_one(pool)
    .await
}

pub(super) async fn drop_figures(
    pool: &PgPool,
    room_id: &str,
) -> Result<Vec<DropFigures>, sqlx::Error> {
    sqlx::query_as!(
        DropFigures,
        r#"SELECT d.id AS drop_id, f.launched_at_ms AS "launched_at_ms?",
                  f.viewers_at_launch AS "viewers_at_launch?",
                  COALESCE(f.countdown_reached, 0) AS "countdown_reached!",
                  COALESCE(f.taps, 0) AS "taps!"
           FROM drops d LEFT JOIN drop_figures f ON f.drop_id = d.id
           WHERE d.room_id = $1 ORDER BY d.id"#,
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn drop_orders(
    pool: &PgPool,
    room_id: &str,
) -> Result<Vec<DropOrders>, sqlx::Error> {
    sqlx::query_as!(
        DropOrders,
        r#"SELECT d.id AS drop_id,
                  COUNT(o.order_id) FILTER (
                      WHERE o.status IN ('reserved', 'paid', 'expired', 'cancelled')
                  ) AS "reserved!",
                  COUNT(o.order_id) FILTER (WHERE o.status = 'paid') AS "paid!",
                  COUNT(o.order_id) FILTER (WHERE o.status = 'expired') AS "expired!",
                  COUNT(DISTINCT o.user_id) FILTER (WHERE o.status = 'paid') AS "buyers!",
                  COUNT(DISTINCT o.user_id) FILTER (WHERE o.status = 'paid' AND EXISTS (
                      SELECT 1 FROM orders p JOIN drops pd ON pd.id = p.drop_id
                      WHERE p.merchant_id = o.merchant_id AND p.user_id = o.user_id
                        AND p.status = 'paid' AND pd.room_id <> d.room_id
                        AND p.admitted_at_ms < o.admitted_at_ms)) AS "repeat_buyers!"
           FROM drops d LEFT JOIN orders o ON o.drop_id = d.id
           WHERE d.room_id = $1 GROUP BY d.id ORDER BY d.id"#,
        room_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn room_buyers(pool: &PgPool, room_id: &str) -> Result<Buyers, sqlx::Error> {
    sqlx::query_as!(
        Buyers,
        r#"SELECT COUNT(DISTINCT o.user_id) AS "unique!",
                  COUNT(DISTINCT o.user_id) FILTER (WHERE EXISTS (
                      SELECT 1 FROM orders p JOIN drops pd ON pd.id = p.drop_id
                      WHERE p.merchant_id = o.merchant_id AND p.user_id = o.user_id
                        AND p.status = 'paid' AND pd.room_id <> d.room_id
                        AND p.admitted_at_ms < o.admitted_at_ms)) AS "repeat!"
           FROM orders o JOIN drops d ON d.id = o.drop_id
           WHERE d.room_id = $1 AND o.status = 'paid'"#,
        room_id
    )
    .fetch_one(pool)
    .await
}

pub(super) async fn delete_before(pool: &PgPool, before_ms: i64) -> Result<u64, sqlx::Error> {
    let seconds = sqlx::query!(
        "DELETE FROM room_seconds WHERE at_s < $1",
        before_ms.div_euclid(1000)
    )
    .execute(pool)
    .await?;
    let viewers = sqlx::query!(
        "DELETE FROM room_viewers WHERE first_seen_ms < $1",
        before_ms
    )
    .execute(pool)
    .await?;
    let drops = sqlx::query!(
        "DELETE FROM drop_figures WHERE updated_at_ms < $1",
        before_ms
    )
    .execute(pool)
    .await?;
    Ok(seconds.rows_affected() + viewers.rows_affected() + drops.rows_affected())
}

//! The webhooks role's records, on PostgreSQL or SQLite: endpoints, the deliveries and
//! attempts of the outbox, and the dispatcher's claims. Each function keeps its PostgreSQL
//! query next to its SQLite twin, so the API handlers and the dispatcher hold no SQL.
//!
//! On SQLite an endpoint's `events` is a JSON array, the outbox's arrays become one
//! statement per row inside the transaction, and `NOTIFY webhook_due` becomes the
//! in-process [`webhook_due`] bell.

use linkdrop_records::db::{Db, Tx, webhook_due};
use serde::Serialize;

use crate::dispatcher::Attempt;

/// An endpoint to store; its secret sealed already.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub url: &'a str,
    pub events: &'a [String],
    pub sealed_secret: &'a str,
    pub created_at_ms: i64,
}

/// An endpoint as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
    pub created_at_ms: i64,
}

/// One logged attempt as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub message_id: String,
    pub attempted_at_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub response_body: Option<String>,
}

/// Where the delivery of one message to an endpoint stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryView {
    pub message_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
    pub created_at_ms: i64,
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub message_id: String,
    pub endpoint_id: String,
    pub attempts: i32,
    pub body: String,
    pub url: String,
    /// Sealed (see `webhook_secrets`), like the previous secret.
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until_ms: Option<i64>,
}

/// Where one delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved<'a> {
    pub message_id: &'a str,
    pub endpoint_id: &'a str,
    /// `pending`, `delivered` or `dead`.
    pub state: &'a str,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
}

/// SQLite keeps integers as i64; these columns are `integer` (i32) on PostgreSQL.
fn int(value: i64) -> Result<i32, sqlx::Error> {
    i32::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// An endpoint's `events` as stored on SQLite (a JSON array).
fn events_json(events: &[String]) -> Result<String, sqlx::Error> {
    serde_json::to_string(events).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn events_of(stored: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(stored).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

type EndpointRow = (String, String, String, Option<i64>, Option<String>, i64);

fn endpoint_view(
    (id, url, events, disabled_at_ms, disabled_reason, created_at_ms): EndpointRow,
) -> Result<EndpointView, sqlx::Error> {
    Ok(EndpointView {
        id,
        url,
        events: events_of(&events)?,
        disabled_at_ms,
        disabled_reason,
        created_at_ms,
    })
}

pub async fn insert_endpoint(db: &Db, endpoint: &NewEndpoint<'_>) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query!(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
                endpoint.id,
                endpoint.merchant_id,
                endpoint.url,
                endpoint.events,
                endpoint.sealed_secret,
                endpoint.created_at_ms
            )
            .execute(pool)
            .await?;
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(endpoint.id)
            .bind(endpoint.merchant_id)
            .bind(endpoint.url)
            .bind(events_json(endpoint.events)?)
            .bind(endpoint.sealed_secret)
            .bind(endpoint.created_at_ms)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// A merchant's endpoints, by id.
pub async fn list_endpoints(db: &Db, merchant_id: &str) -> Result<Vec<EndpointView>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
                EndpointView,
                "SELECT id, url, events, disabled_at_ms, disabled_reason, created_at_ms
         FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id",
                merchant_id
            )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => sqlx::query_as::<_, EndpointRow>(
            "SELECT id, url, events, disabled_at_ms, disabled_reason, created_at_ms
             FROM webhook_endpoints WHERE merchant_id = ? ORDER BY id",
        )
        .bind(merchant_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(endpoint_view)
        .collect(),
    }
}

/// The merchant an endpoint belongs to, if it exists.
pub async fn endpoint_owner(db: &Db, endpoint_id: &str) -> Result<Option<String>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar!(
                "SELECT merchant_id FROM webhook_endpoints WHERE id = $1",
                endpoint_id
            )
            .fetch_optional(pool)
            .await
        }
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT merchant_id FROM webhook_endpoints WHERE id = ?")
                .bind(endpoint_id)
                .fetch_optional(pool)
                .await
        }
    }
}

/// Deletes an endpoint with its deliveries and attempts (cascade); whether it existed.
pub async fn delete_endpoint(db: &Db, endpoint_id: &str) -> Result<bool, sqlx::Error> {
    let deleted = match db {
        Db::Postgres(pool) => {
            sqlx::query!("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
                .execute(pool)
                .await?
                .rows_affected()
        }
        Db::Sqlite(pool) => sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?")
            .bind(endpoint_id)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    Ok(deleted == 1)
}

/// The latest `limit` attempts at an endpoint, newest first.
pub async fn list_attempts(
    db: &Db,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<AttemptView>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
                AttemptView,
                "SELECT message_id, attempted_at_ms, status_code, error, duration_ms, response_body
         FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
                endpoint_id,
                limit
            )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => sqlx::query_as::<
            _,
            (
                String,
                i64,
                Option<i64>,
                Option<String>,
                i64,
                Option<String>,
            ),
        >(
            "SELECT message_id, attempted_at_ms, status_code, error, duration_ms, response_body
             FROM webhook_attempts WHERE endpoint_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(
            |(message_id, attempted_at_ms, status_code, error, duration_ms, response_body)| {
                Ok(AttemptView {
                    message_id,
                    attempted_at_ms,
                    status_code: status_code.map(int).transpose()?,
                    error,
                    duration_ms: int(duration_ms)?,
                    response_body,
                })
            },
        )
        .collect(),
    }
}

/// Makes `sealed_secret` the endpoint's secret; the current one becomes the previous
/// secret, which keeps signing until `previous_until_ms`.
pub async fn rotate_secret(
    db: &Db,
    endpoint_id: &str,
    sealed_secret: &str,
    previous_until_ms: i64,
) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query!(
                "UPDATE webhook_endpoints
         SET previous_secret = secret, previous_secret_until_ms = $3, secret = $2
         WHERE id = $1",
                endpoint_id,
                sealed_secret,
                previous_until_ms
            )
            .execute(pool)
            .await?;
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "UPDATE webhook_endpoints
                 SET previous_secret = secret, previous_secret_until_ms = ?3, secret = ?2
                 WHERE id = ?1",
            )
            .bind(endpoint_id)
            .bind(sealed_secret)
            .bind(previous_until_ms)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Enables an endpoint again (clearing its failing streak); the endpoint as it is now.
/// `RowNotFound` if there is no such endpoint.
pub async fn enable_endpoint(db: &Db, endpoint_id: &str) -> Result<EndpointView, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
                EndpointView,
                "UPDATE webhook_endpoints
         SET disabled_at_ms = NULL, disabled_reason = NULL, failing_since_ms = NULL
         WHERE id = $1
         RETURNING id, url, events, disabled_at_ms, disabled_reason, created_at_ms",
                endpoint_id
            )
            .fetch_one(pool)
            .await
        }
        Db::Sqlite(pool) => endpoint_view(
            sqlx::query_as::<_, EndpointRow>(
                "UPDATE webhook_endpoints
                 SET disabled_at_ms = NULL, disabled_reason = NULL, failing_since_ms = NULL
                 WHERE id = ?
                 RETURNING id, url, events, disabled_at_ms, disabled_reason, created_at_ms",
            )
            .bind(endpoint_id)
            .fetch_one(pool)
            .await?,
        ),
    }
}

/// The latest `limit` deliveries to an endpoint (in `state` only, if given), newest
/// message first.
pub async fn list_deliveries(
    db: &Db,
    endpoint_id: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryView>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
                DeliveryView,
                "SELECT d.message_id, m.event_type, d.state, d.attempts, d.next_attempt_at_ms,
                m.created_at_ms
         FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
         WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.state = $2)
         ORDER BY m.created_at_ms DESC, d.message_id DESC LIMIT $3",
                endpoint_id,
                state,
                limit
            )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => sqlx::query_as::<_, (String, String, String, i64, i64, i64)>(
            "SELECT d.message_id, m.event_type, d.state, d.attempts, d.next_attempt_at_ms,
                    m.created_at_ms
             FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
             WHERE d.endpoint_id = ?1 AND (?2 IS NULL OR d.state = ?2)
             ORDER BY m.created_at_ms DESC, d.message_id DESC LIMIT ?3",
        )
        .bind(endpoint_id)
        .bind(state)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(
            |(message_id, event_type, state, attempts, next_attempt_at_ms, created_at_ms)| {
                Ok(DeliveryView {
                    message_id,
                    event_type,
                    state,
                    attempts: int(attempts)?,
                    next_attempt_at_ms,
                    created_at_ms,
                })
            },
        )
        .collect(),
    }
}

/// The merchant a message belongs to, if it exists.
pub async fn message_owner(db: &Db, message_id: &str) -> Result<Option<String>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar!(
                "SELECT merchant_id FROM webhook_messages WHERE id = $1",
                message_id
            )
            .fetch_optional(pool)
            .await
        }
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT merchant_id FROM webhook_messages WHERE id = ?")
                .bind(message_id)
                .fetch_optional(pool)
                .await
        }
    }
}

/// Delivers a message again, due at `now_ms` with its attempts reset, to every enabled
/// endpoint of its merchant subscribed to its type (a new delivery where there was none);
/// how many endpoints. Wake the dispatchers afterwards.
pub async fn redeliver(db: &Db, message_id: &str, now_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(match db {
        Db::Postgres(pool) => sqlx::query!(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
         SELECT m.id, e.id, $2
         FROM webhook_messages m
         JOIN webhook_endpoints e
           ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
          AND m.event_type = ANY(e.events)
         WHERE m.id = $1
         ON CONFLICT (message_id, endpoint_id) DO UPDATE
         SET state = 'pending', attempts = 0, next_attempt_at_ms = $2, locked_until_ms = NULL",
            message_id,
            now_ms
        )
        .execute(pool)
        .await?
        .rows_affected(),
        // The WHERE clause also keeps SQLite from reading `ON CONFLICT` as a join's.
        Db::Sqlite(pool) => sqlx::query(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
             SELECT m.id, e.id, ?2
             FROM webhook_messages m
             JOIN webhook_endpoints e
               ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
              AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = m.event_type)
             WHERE m.id = ?1
             ON CONFLICT (message_id, endpoint_id) DO UPDATE
             SET state = 'pending', attempts = 0, next_attempt_at_ms = ?2, locked_until_ms = NULL",
        )
        .bind(message_id)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected(),
    })
}

/// Tells the dispatchers that deliveries may be due: `NOTIFY webhook_due` on PostgreSQL,
/// the in-process bell on SQLite.
pub async fn wake_dispatchers(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(pool) => sqlx::query!("SELECT pg_notify('webhook_due', '')")
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Sqlite(_) => {
            webhook_due().notify_one();
            Ok(())
        }
    }
}

/// Deletes the attempts made before `before_ms`; how many.
pub async fn purge_attempts(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(match db {
        Db::Postgres(pool) => sqlx::query!(
            "DELETE FROM webhook_attempts WHERE attempted_at_ms < $1",
            before_ms
        )
        .execute(pool)
        .await?
        .rows_affected(),
        Db::Sqlite(pool) => sqlx::query("DELETE FROM webhook_attempts WHERE attempted_at_ms < ?")
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected(),
    })
}

/// Claims up to `batch` deliveries due at `now` of enabled endpoints (a disabled
/// endpoint's wait for it to be enabled again), earliest first, locking them for
/// `lock_ms`. On PostgreSQL other dispatchers skip the rows being claimed; on SQLite the
/// claim is one write transaction, so they wait for it instead.
pub async fn claim(
    db: &Db,
    now: i64,
    batch: i64,
    lock_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_as!(
                Claimed,
                r#"WITH due AS (
                   SELECT d.message_id, d.endpoint_id
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints e ON e.id = d.endpoint_id
                   WHERE d.state = 'pending' AND d.next_attempt_at_ms <= $1
                     AND (d.locked_until_ms IS NULL OR d.locked_until_ms < $1)
                     AND e.disabled_at_ms IS NULL
                   ORDER BY d.next_attempt_at_ms
                   LIMIT $2
                   FOR UPDATE OF d SKIP LOCKED
               ), claimed AS (
                   UPDATE webhook_deliveries d SET locked_until_ms = $1 + $3
                   FROM due
                   WHERE d.message_id = due.message_id AND d.endpoint_id = due.endpoint_id
                   RETURNING d.message_id, d.endpoint_id, d.attempts
               )
               SELECT c.message_id AS "message_id!", c.endpoint_id AS "endpoint_id!",
                      c.attempts AS "attempts!", m.body, e.url, e.secret,
                      e.previous_secret, e.previous_secret_until_ms
               FROM claimed c
               JOIN webhook_messages m ON m.id = c.message_id
               JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
                now,
                batch,
                lock_ms
            )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(_) => {
            let mut tx = db.begin().await?;
            let Tx::Sqlite { tx: conn, .. } = &mut tx else {
                unreachable!("a SQLite database begins SQLite transactions")
            };
            type Row = (
                String,
                String,
                i64,
                String,
                String,
                String,
                Option<String>,
                Option<i64>,
            );
            let due = sqlx::query_as::<_, Row>(
                "SELECT d.message_id, d.endpoint_id, d.attempts, m.body, e.url, e.secret,
                        e.previous_secret, e.previous_secret_until_ms
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 JOIN webhook_messages m ON m.id = d.message_id
                 WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ?1
                   AND (d.locked_until_ms IS NULL OR d.locked_until_ms < ?1)
                   AND e.disabled_at_ms IS NULL
                 ORDER BY d.next_attempt_at_ms
                 LIMIT ?2",
            )
            .bind(now)
            .bind(batch)
            .fetch_all(&mut **conn)
            .await?;
            let mut claimed = Vec::with_capacity(due.len());
            for (message_id, endpoint_id, attempts, body, url, secret, previous, until) in due {
                sqlx::query(
                    "UPDATE webhook_deliveries SET locked_until_ms = ?
                     WHERE message_id = ? AND endpoint_id = ?",
                )
                .bind(now + lock_ms)
                .bind(&message_id)
                .bind(&endpoint_id)
                .execute(&mut **conn)
                .await?;
                claimed.push(Claimed {
                    message_id,
                    endpoint_id,
                    attempts: int(attempts)?,
                    body,
                    url,
                    secret,
                    previous_secret: previous,
                    previous_secret_until_ms: until,
                });
            }
            tx.commit().await?;
            Ok(claimed)
        }
    }
}

/// Logs the attempts made at `attempted_at_ms`.
pub async fn log_attempts(
    tx: &mut Tx,
    attempted_at_ms: i64,
    outcomes: &[(Claimed, Attempt)],
) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(tx) => {
            let column = |f: fn(&Claimed) -> &String| -> Vec<String> {
                outcomes.iter().map(|(d, _)| f(d).clone()).collect()
            };
            let (message_ids, endpoint_ids) =
                (column(|d| &d.message_id), column(|d| &d.endpoint_id));
            sqlx::query!(
                "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at_ms, status_code,
                                           error, duration_ms, response_body)
             SELECT a.message_id, a.endpoint_id, $3, a.status_code, a.error, a.duration_ms,
                    a.response_body
             FROM UNNEST($1::text[], $2::text[], $4::int4[], $5::text[], $6::int4[], $7::text[])
                  AS a(message_id, endpoint_id, status_code, error, duration_ms, response_body)",
                &message_ids,
                &endpoint_ids,
                attempted_at_ms,
                &outcomes
                    .iter()
                    .map(|(_, a)| a.status_code.map(i32::from))
                    .collect::<Vec<_>>() as &[Option<i32>],
                &outcomes
                    .iter()
                    .map(|(_, a)| a.error.clone())
                    .collect::<Vec<_>>() as &[Option<String>],
                &outcomes
                    .iter()
                    .map(|(_, a)| a.duration_ms as i32)
                    .collect::<Vec<_>>(),
                &outcomes
                    .iter()
                    .map(|(_, a)| a.response_body.clone())
                    .collect::<Vec<_>>() as &[Option<String>]
            )
            .execute(&mut **tx)
            .await?;
        }
        Tx::Sqlite { tx, .. } => {
            for (delivery, attempt) in outcomes {
                sqlx::query(
                    "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at_ms,
                                                   status_code, error, duration_ms, response_body)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&delivery.message_id)
                .bind(&delivery.endpoint_id)
                .bind(attempted_at_ms)
                .bind(attempt.status_code.map(i32::from))
                .bind(&attempt.error)
                .bind(attempt.duration_ms as i32)
                .bind(&attempt.response_body)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// Moves deliveries on after their attempts (and releases their claims).
pub async fn move_deliveries(tx: &mut Tx, moves: &[Moved<'_>]) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(tx) => {
            let column = |f: for<'m> fn(&'m Moved<'m>) -> &'m str| -> Vec<String> {
                moves.iter().map(|m| f(m).to_string()).collect()
            };
            let (message_ids, endpoint_ids) = (column(|m| m.message_id), column(|m| m.endpoint_id));
            sqlx::query!(
                "UPDATE webhook_deliveries d
             SET state = u.state, attempts = u.attempts, next_attempt_at_ms = u.next,
                 locked_until_ms = NULL
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[])
                  AS u(message_id, endpoint_id, state, attempts, next)
             WHERE d.message_id = u.message_id AND d.endpoint_id = u.endpoint_id",
                &message_ids,
                &endpoint_ids,
                &column(|m| m.state),
                &moves.iter().map(|m| m.attempts).collect::<Vec<_>>(),
                &moves
                    .iter()
                    .map(|m| m.next_attempt_at_ms)
                    .collect::<Vec<_>>()
            )
            .execute(&mut **tx)
            .await?;
        }
        Tx::Sqlite { tx, .. } => {
            for m in moves {
                sqlx::query(
                    "UPDATE webhook_deliveries
                     SET state = ?, attempts = ?, next_attempt_at_ms = ?, locked_until_ms = NULL
                     WHERE message_id = ? AND endpoint_id = ?",
                )
                .bind(m.state)
                .bind(m.attempts)
                .bind(m.next_attempt_at_ms)
                .bind(m.message_id)
                .bind(m.endpoint_id)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The endpoint answered: its failing streak, if any, ends.
pub async fn endpoint_answered(tx: &mut Tx, endpoint_id: &str) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(tx) => {
            sqlx::query!(
                "UPDATE webhook_endpoints SET failing_since_ms = NULL
                 WHERE id = $1 AND failing_since_ms IS NOT NULL",
                endpoint_id
            )
            .execute(&mut **tx)
            .await?;
        }
        Tx::Sqlite { tx, .. } => {
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since_ms = NULL
                 WHERE id = ? AND failing_since_ms IS NOT NULL",
            )
            .bind(endpoint_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The endpoint failed at `now`: its failing streak starts, or, once it has lasted
/// `disable_after_ms` (or at once when it is `gone`), the endpoint is disabled. Whether it
/// is disabled now; `None` when it was disabled already (or does not exist).
pub async fn endpoint_failed(
    tx: &mut Tx,
    endpoint_id: &str,
    now: i64,
    disable_after_ms: i64,
    gone: bool,
) -> Result<Option<bool>, sqlx::Error> {
    match tx {
        Tx::Postgres(tx) => {
            sqlx::query_scalar!(
                "UPDATE webhook_endpoints
             SET failing_since_ms = coalesce(failing_since_ms, $2),
                 disabled_at_ms = CASE
                     WHEN $4 OR coalesce(failing_since_ms, $2) <= $2 - $3 THEN $2
                     ELSE disabled_at_ms END,
                 disabled_reason = CASE
                     WHEN $4 THEN 'the endpoint answered 410 Gone'
                     WHEN coalesce(failing_since_ms, $2) <= $2 - $3
                         THEN 'every attempt failed for too long'
                     ELSE disabled_reason END
             WHERE id = $1 AND disabled_at_ms IS NULL
             RETURNING disabled_at_ms IS NOT NULL AS \"disabled!\"",
                endpoint_id,
                now,
                disable_after_ms,
                gone
            )
            .fetch_optional(&mut **tx)
            .await
        }
        Tx::Sqlite { tx, .. } => {
            sqlx::query_scalar(
                "UPDATE webhook_endpoints
                 SET failing_since_ms = coalesce(failing_since_ms, ?2),
                     disabled_at_ms = CASE
                         WHEN ?4 OR coalesce(failing_since_ms, ?2) <= ?2 - ?3 THEN ?2
                         ELSE disabled_at_ms END,
                     disabled_reason = CASE
                         WHEN ?4 THEN 'the endpoint answered 410 Gone'
                         WHEN coalesce(failing_since_ms, ?2) <= ?2 - ?3
                             THEN 'every attempt failed for too long'
                         ELSE disabled_reason END
                 WHERE id = ?1 AND disabled_at_ms IS NULL
                 RETURNING disabled_at_ms IS NOT NULL",
            )
            .bind(endpoint_id)
            .bind(now)
            .bind(disable_after_ms)
            .bind(gone)
            .fetch_optional(&mut **tx)
            .await
        }
    }
}

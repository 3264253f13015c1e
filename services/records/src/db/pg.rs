//! PostgreSQL: notifications.

use sqlx::PgExecutor;

/// `NOTIFY channel`; inside a transaction PostgreSQL delivers it when that commits.
pub(super) async fn notify(on: impl PgExecutor<'_>, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, '')", channel)
        .execute(on)
        .await?;
    Ok(())
}

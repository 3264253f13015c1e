//! The health of an endpoint: an answer ends its failing streak; a failure starts one or,
//! once it has lasted the configured period (or at once for 410 Gone), disables the
//! endpoint, with the reason. A disabled endpoint gets no deliveries until it is enabled
//! again ([`super::endpoints::enable`]).

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use crate::db::{Tx, dispatch};

/// The endpoint answered: its failing streak, if any, ends.
pub async fn answered(tx: &mut Tx, endpoint_id: &str) -> Result<(), sqlx::Error> {
    dispatch!(tx, answered(endpoint_id))
}

/// The endpoint failed at `now`: its failing streak starts, or, once it has lasted
/// `disable_after_ms` (or at once when it is `gone`), the endpoint is disabled. Whether it
/// is disabled now; `None` when it was disabled already (or does not exist).
pub async fn failed(
    tx: &mut Tx,
    endpoint_id: &str,
    now: i64,
    disable_after_ms: i64,
    gone: bool,
) -> Result<Option<bool>, sqlx::Error> {
    dispatch!(tx, failed(endpoint_id, now, disable_after_ms, gone))
}

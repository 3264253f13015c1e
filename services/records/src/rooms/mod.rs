//! Live-stream rooms, each owned by a merchant.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use linkdrop_domain::model::Room;

use crate::db::{Db, dispatch};

/// Stores a room; an error if its id is stored already.
pub async fn insert(db: &Db, room: &Room) -> Result<(), sqlx::Error> {
    dispatch!(db, insert(room))
}

/// The room `room_id`, if it exists.
pub async fn find(db: &Db, room_id: &str) -> Result<Option<Room>, sqlx::Error> {
    dispatch!(db, find(room_id))
}

/// The newest rooms (at most 200), of one merchant or of all.
pub async fn list(db: &Db, merchant_id: Option<&str>) -> Result<Vec<Room>, sqlx::Error> {
    dispatch!(db, list(merchant_id))
}

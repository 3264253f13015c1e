//! The records behave the same on PostgreSQL (the stack) and SQLite (the embedded
//! backend): every area of `linkdrop-records` has its module here, and every check runs
//! against both ([`support::both_record_stores`]). [`schema`] proves the two migration
//! trees define the same tables, columns and indexes.

use linkdrop_testkit as support;

mod common;
mod decoding;
mod drops;
mod keys_and_rooms;
mod notify;
mod orders;
mod schema;
mod settlement;
mod webhooks;

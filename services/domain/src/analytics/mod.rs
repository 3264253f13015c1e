//! The host's analytics, as figures: the audience curve of a room, each drop's funnel,
//! conversion, time to sell out, demand and retention ([`report`]), and the advice drawn
//! from them ([`advice`]). Pure arithmetic on what the records hold; the control role reads
//! the records and serves the result as `GET /v1/rooms/{room_id}/report`.

pub mod advice;
pub mod audience;
pub mod report;

pub use advice::{Advice, advise};
pub use audience::{Audience, AudiencePoint, Second};
pub use report::{DropInputs, DropReport, Rates, Retention};

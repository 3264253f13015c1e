//! Drop news: what every orders process is told about a live drop, so that it can refuse a
//! request by itself, without the drop's live state (edge answers).
//!
//! Each script that changes a fact an edge answer rests on — the phase, the opening time,
//! the units left, the lottery draw — or that records shoppers' answers raises the drop's
//! `version` and publishes one line of news on the drop news channel
//! ([`crate::keys::Keys::drop_news_channel`]); the same line comes back in its reply. A
//! process that knows nothing yet reads a snapshot (`drop_state.lua`). `drop_news.lua`
//! writes the line; this module reads it. The two agree on [`FIELDS`].

use crate::drop_meta::DropMetaField;
pub use crate::drop_meta::LivePhase;
use crate::model::Fairness;

/// The Lua functions that write drop news; put in front of every script that publishes or
/// reads it (see [`with_news`]).
pub const DROP_NEWS_LUA: &str = include_str!("drop_news.lua");

/// The fields of a line of news, in order (`drop_news.lua` writes them so); most are
/// fields of the drop's meta hash, by the same name.
pub const FIELDS: [&str; 11] = [
    "kind",
    "drop_id",
    DropMetaField::Version.as_str(),
    DropMetaField::Phase.as_str(),
    DropMetaField::OpensAtMs.as_str(),
    DropMetaField::StockLeft.as_str(),
    DropMetaField::Policy.as_str(),
    DropMetaField::WindowMs.as_str(),
    DropMetaField::Drawn.as_str(),
    DropMetaField::MaxPerUser.as_str(),
    "users",
];

/// `source` with the drop news functions in front of it: the text to load as a script.
pub fn with_news(source: &str) -> String {
    format!("{DROP_NEWS_LUA}\n{source}")
}

/// Whether a line tells a change (and the users it recorded) or only what is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewsKind {
    /// Published by the script that made the change; `users` are exactly the shoppers
    /// whose answer that change recorded.
    Change,
    /// Read, not made: `users` is empty (a reader learns them apart).
    Snapshot,
}

/// What an edge answer rests on, as of one `version` of the drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFacts {
    pub version: u64,
    pub phase: LivePhase,
    /// Set once launched.
    pub opens_at_ms: Option<i64>,
    pub stock_left: i64,
    /// `Some(window_ms)` for a lottery.
    pub lottery_window_ms: Option<u32>,
    /// A lottery's draw is done (after it, what is left sells first come, first served).
    pub drawn: bool,
    pub max_per_user: u32,
}

/// One line of drop news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropNews {
    pub kind: NewsKind,
    pub drop_id: String,
    pub facts: DropFacts,
    /// Shoppers whose answer this change recorded (empty for a snapshot).
    pub users: Vec<String>,
}

/// A line that is not drop news; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("drop news field {field}: {problem} (in {line:?})")]
pub struct NewsError {
    pub field: &'static str,
    pub problem: &'static str,
    pub line: String,
}

impl DropNews {
    /// Parses one line as `drop_news.lua` writes it.
    pub fn parse(line: &str) -> Result<Self, NewsError> {
        let parts: Vec<&str> = line.split('\t').collect();
        let error = |i: usize, problem: &'static str| NewsError {
            field: FIELDS[i],
            problem,
            line: line.to_string(),
        };
        if parts.len() != FIELDS.len() {
            return Err(error(0, "wrong number of fields"));
        }
        let kind = match parts[0] {
            "change" => NewsKind::Change,
            "snapshot" => NewsKind::Snapshot,
            _ => return Err(error(0, "neither change nor snapshot")),
        };
        if parts[1].is_empty() {
            return Err(error(1, "empty"));
        }
        let number = |i: usize| {
            parts[i]
                .parse::<i64>()
                .map_err(|_| error(i, "not a number"))
        };
        let version = u64::try_from(number(2)?).map_err(|_| error(2, "negative"))?;
        let phase = LivePhase::parse(parts[3]).ok_or_else(|| error(3, "unknown phase"))?;
        let opens_at_ms = match parts[4] {
            "" => None,
            _ => Some(number(4)?),
        };
        let window_ms = match parts[7] {
            "" => Some(0),
            _ => i32::try_from(number(7)?).ok(),
        };
        let lottery_window_ms = match Fairness::from_parts(parts[6], window_ms) {
            Some(Fairness::Lottery { window_ms }) => Some(window_ms),
            Some(Fairness::Fcfs) => None,
            None => return Err(error(6, "unknown policy or window")),
        };
        let drawn = match parts[8] {
            "1" => true,
            "" | "0" => false,
            _ => return Err(error(8, "neither 0 nor 1")),
        };
        let max_per_user = u32::try_from(number(9)?).map_err(|_| error(9, "out of range"))?;
        Ok(Self {
            kind,
            drop_id: parts[1].to_string(),
            facts: DropFacts {
                version,
                phase,
                opens_at_ms,
                stock_left: number(5)?,
                lottery_window_ms,
                drawn,
                max_per_user,
            },
            users: parts[10]
                .split(' ')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_carries_its_facts_and_users() {
        let news =
            DropNews::parse("change\tdrp_1\t7\tlaunched\t1700\t0\tfcfs\t0\t\t2\tu-1 U:2").unwrap();
        assert_eq!(news.kind, NewsKind::Change);
        assert_eq!(news.drop_id, "drp_1");
        assert_eq!(
            news.facts,
            DropFacts {
                version: 7,
                phase: LivePhase::Launched,
                opens_at_ms: Some(1700),
                stock_left: 0,
                lottery_window_ms: None,
                drawn: false,
                max_per_user: 2,
            }
        );
        assert_eq!(news.users, ["u-1", "U:2"]);
    }

    #[test]
    fn a_draft_has_no_opening_time_nor_users() {
        let news =
            DropNews::parse("snapshot\tdrp_1\t0\tdraft\t\t5\tlottery\t2000\t0\t1\t").unwrap();
        assert_eq!(news.facts.opens_at_ms, None);
        assert_eq!(news.facts.lottery_window_ms, Some(2000));
        assert!(news.users.is_empty());
    }

    #[test]
    fn a_bad_field_is_named() {
        let bad = |line: &str| DropNews::parse(line).unwrap_err().field;
        assert_eq!(
            bad("change\tdrp_1\tx\tdraft\t\t5\tfcfs\t0\t\t1\t"),
            "version"
        );
        assert_eq!(bad("change\tdrp_1\t1\topen\t\t5\tfcfs\t0\t\t1\t"), "phase");
        assert_eq!(
            bad("change\tdrp_1\t1\tdraft\t\t5\tdutch\t0\t\t1\t"),
            "policy"
        );
        assert_eq!(
            bad("change\tdrp_1\t1\tdraft\t\t5\tfcfs\t0\t\t-1\t"),
            "max_per_user"
        );
        assert_eq!(bad("change\tdrp_1\t1"), "kind");
    }
}

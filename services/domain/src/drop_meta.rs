//! A drop's live state: the fields of its meta hash ([`crate::keys::Keys::drop_meta`]), the
//! one definition of their names for every language that reads or writes them.
//!
//! Rust code names a field with [`DropMetaField`]; the Lua scripts that change the live
//! state (launch, close, admission, draw, expiry, payment, the drop news functions) cannot
//! import it and spell the names as string literals, and each script's header cites this
//! file. The embedded engine runs those same scripts. A name changed here must be changed
//! in every script that cites it.

use std::fmt;

/// One field of a drop's meta hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropMetaField {
    /// `draft`, `launched` or `closed` ([`LivePhase`]).
    Phase,
    /// The room the drop is shown in.
    RoomId,
    /// The merchant selling it.
    MerchantId,
    /// Units put on sale.
    Stock,
    /// Units not reserved or paid.
    StockLeft,
    /// Units paid for.
    Paid,
    /// Most units one shopper may hold.
    MaxPerUser,
    /// `fcfs` or `lottery` ([`crate::model::Fairness`]).
    Policy,
    /// A lottery's entry window after the opening (0 for `fcfs`).
    WindowMs,
    /// How long a reservation waits for its payment.
    PayWithinMs,
    /// When orders are admitted (Redis server time), set at launch.
    OpensAtMs,
    /// A lottery's seed, hex; secret until the draw.
    Seed,
    /// hex(SHA-256(seed)), published at launch.
    SeedHash,
    /// `1` once a lottery's draw is applied, `0` before.
    Drawn,
    /// When the host closed the drop.
    ClosedAtMs,
    /// When the last unit was taken (removed when units come back).
    SoldOutAtMs,
    /// Raised by one with every change that drop news tells ([`crate::drop_news`]).
    Version,
    /// When the draw was applied.
    DrawnAtMs,
    /// The largest winning rank, hex; empty when nobody won.
    CutoffRank,
    /// Entries the draw was computed over.
    DrawEntries,
    /// Entries that won.
    DrawWinners,
    /// `1` once the draw was announced (room, shoppers, records).
    DrawAnnounced,
}

impl DropMetaField {
    /// Every field.
    pub const ALL: [DropMetaField; 22] = [
        Self::Phase,
        Self::RoomId,
        Self::MerchantId,
        Self::Stock,
        Self::StockLeft,
        Self::Paid,
        Self::MaxPerUser,
        Self::Policy,
        Self::WindowMs,
        Self::PayWithinMs,
        Self::OpensAtMs,
        Self::Seed,
        Self::SeedHash,
        Self::Drawn,
        Self::ClosedAtMs,
        Self::SoldOutAtMs,
        Self::Version,
        Self::DrawnAtMs,
        Self::CutoffRank,
        Self::DrawEntries,
        Self::DrawWinners,
        Self::DrawAnnounced,
    ];

    /// The field's name in the hash.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Phase => "phase",
            Self::RoomId => "room_id",
            Self::MerchantId => "merchant_id",
            Self::Stock => "stock",
            Self::StockLeft => "stock_left",
            Self::Paid => "paid",
            Self::MaxPerUser => "max_per_user",
            Self::Policy => "policy",
            Self::WindowMs => "window_ms",
            Self::PayWithinMs => "pay_within_ms",
            Self::OpensAtMs => "opens_at_ms",
            Self::Seed => "seed",
            Self::SeedHash => "seed_hash",
            Self::Drawn => "drawn",
            Self::ClosedAtMs => "closed_at_ms",
            Self::SoldOutAtMs => "sold_out_at_ms",
            Self::Version => "version",
            Self::DrawnAtMs => "drawn_at_ms",
            Self::CutoffRank => "cutoff_rank",
            Self::DrawEntries => "draw_entries",
            Self::DrawWinners => "draw_winners",
            Self::DrawAnnounced => "draw_announced",
        }
    }
}

impl fmt::Display for DropMetaField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored phase of a drop's live state ([`DropMetaField::Phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivePhase {
    Draft,
    Launched,
    Closed,
}

impl LivePhase {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(Self::Draft),
            "launched" => Some(Self::Launched),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Launched => "launched",
            Self::Closed => "closed",
        }
    }
}

/// A `0`/`1` flag of the hash ([`DropMetaField::Drawn`], [`DropMetaField::DrawAnnounced`]).
pub fn parse_flag(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_field_has_its_own_snake_case_name() {
        let names: HashSet<&str> = DropMetaField::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names.len(), DropMetaField::ALL.len());
        for name in names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }

    /// The Lua scripts spell the names themselves; every name they use must be one of
    /// these (and they say where the names are defined).
    #[test]
    fn the_scripts_use_only_these_names_and_cite_them() {
        let scripts = [
            ("drop_news.lua", include_str!("drop_news.lua")),
            ("close.lua", include_str!("../../control/src/close.lua")),
            (
                "admission.lua",
                include_str!("../../orders/src/admission.lua"),
            ),
            ("draw.lua", include_str!("../../orders/src/draw.lua")),
            (
                "drop_state.lua",
                include_str!("../../orders/src/drop_state.lua"),
            ),
            ("expire.lua", include_str!("../../orders/src/expire.lua")),
            ("pay.lua", include_str!("../../orders/src/pay.lua")),
        ];
        for (name, source) in scripts {
            assert!(
                source.contains("services/domain/src/drop_meta.rs"),
                "{name} does not cite the field names"
            );
            for field in meta_fields_used(source) {
                assert!(
                    DropMetaField::ALL.iter().any(|f| f.as_str() == field),
                    "{name} uses {field:?}, which is not a DropMetaField"
                );
            }
        }
    }

    /// The field names of every `HGET`/`HMGET`/`HSET`/`HINCRBY`/`HDEL` on the meta hash
    /// (`KEYS[1]` in these scripts, `meta_key` in the drop news functions) that are
    /// written as literals: every argument of a read or delete, every other one of `HSET`
    /// (field, value, ...), the first of `HINCRBY`.
    fn meta_fields_used(source: &str) -> Vec<String> {
        let code: Vec<&str> = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        let code = code.join("\n");
        let mut fields = Vec::new();
        for call in code.split("redis.call(").skip(1) {
            let call = &call[..call.find(')').unwrap_or(call.len())];
            let args: Vec<&str> = call.split(',').map(str::trim).collect();
            let (Some(op), Some(key)) = (args.first(), args.get(1)) else {
                continue;
            };
            if !matches!(*key, "KEYS[1]" | "meta_key") {
                continue;
            }
            let names: Vec<&str> = match *op {
                "'HGET'" | "'HMGET'" | "'HDEL'" => args[2..].to_vec(),
                "'HSET'" => args[2..].iter().step_by(2).copied().collect(),
                "'HINCRBY'" => args[2..3].to_vec(),
                _ => continue,
            };
            fields.extend(
                names
                    .iter()
                    .filter_map(|a| a.strip_prefix('\'')?.strip_suffix('\''))
                    .map(str::to_string),
            );
        }
        fields
    }

    #[test]
    fn the_reading_of_scripts_finds_fields_not_values() {
        let script = "redis.call('HSET', KEYS[1], 'phase', 'closed', 'closed_at_ms', now)\n\
                      -- redis.call('HGET', KEYS[1], 'commented')\n\
                      redis.call('HMGET', KEYS[1], 'a',\n  'b')\n\
                      redis.call('HGET', KEYS[2], 'other_hash')";
        assert_eq!(
            meta_fields_used(script),
            ["phase", "closed_at_ms", "a", "b"]
        );
    }
}

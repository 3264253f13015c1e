//! Stream values: their ids and entries, and XADD, XLEN, XRANGE, XDEL and XSETID. Consumer
//! groups, which a stream carries, are in `groups.rs`.

use std::collections::BTreeMap;

use redis::Value;

use super::args::int;
use super::groups::Group;
use super::reply::{CmdError, Reply, arity, bulk};
use super::{Ctx, HashMap, Keyspace, record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub(super) const ZERO: StreamId = StreamId(0, 0);

    pub(super) fn render(self) -> Vec<u8> {
        format!("{}-{}", self.0, self.1).into_bytes()
    }

    /// `ms-seq` or `ms` (then `seq` is `missing_seq`).
    pub(super) fn parse(raw: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid_id())?;
        let (ms, seq) = match text.split_once('-') {
            Some((ms, seq)) => (ms, seq.parse().map_err(|_| invalid_id())?),
            None => (text, missing_seq),
        };
        Ok(StreamId(ms.parse().map_err(|_| invalid_id())?, seq))
    }
}

fn invalid_id() -> CmdError {
    CmdError::new(
        "ERR",
        "Invalid stream ID specified as stream command argument",
    )
}

#[derive(Default)]
pub struct Stream {
    pub(super) entries: BTreeMap<StreamId, Fields>,
    pub(super) last_id: Option<StreamId>,
    pub(super) groups: HashMap<Vec<u8>, Group>,
}

/// An entry's fields and values in one buffer (each `length, bytes`, the length a u32
/// little-endian): one allocation per entry, not one per field and value — an outbox holds
/// an entry of sixteen per order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields(Vec<u8>);

impl Fields {
    pub(super) fn pack(items: &[Vec<u8>]) -> Self {
        let len = items.iter().map(|i| 4 + i.len()).sum();
        let mut packed = Vec::with_capacity(len);
        for item in items {
            packed.extend((item.len() as u32).to_le_bytes());
            packed.extend_from_slice(item);
        }
        Self(packed)
    }

    /// The size of the packed fields and values.
    pub(super) fn bytes(&self) -> usize {
        self.0.len()
    }

    /// The fields and values, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (item, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            rest = tail;
            Some(item)
        })
    }
}

/// A stream entry as Redis sends it: `[id, [field, value, ...]]`, the fields nil when the
/// entry was deleted.
pub(super) fn entry(id: StreamId, fields: Option<&Fields>) -> Value {
    Value::Array(vec![
        bulk(id.render()),
        fields.map_or(Value::Nil, |f| Value::Array(f.iter().map(bulk).collect())),
    ])
}

impl Keyspace {
    /// `XADD key [MAXLEN [~|=] n] id|* field value ...`. Trimming is exact; the journaled
    /// effect names the id given, so replay builds the same stream.
    pub(super) fn xadd(&mut self, ctx: &mut Ctx, a: &[Vec<u8>]) -> Reply {
        let Some((key, mut rest)) = a.split_first() else {
            return arity("XADD");
        };
        let mut maxlen = None;
        if rest
            .first()
            .is_some_and(|o| o.eq_ignore_ascii_case(b"MAXLEN"))
        {
            let skip = if rest.get(1).is_some_and(|o| o == b"~" || o == b"=") {
                2
            } else {
                1
            };
            maxlen = Some(int(rest.get(skip).ok_or_else(CmdError::syntax)?)?.max(0) as usize);
            rest = &rest[skip + 1..];
        }
        let [id, fields @ ..] = rest else {
            return arity("XADD");
        };
        if fields.is_empty() || fields.len() % 2 != 0 {
            return arity("XADD");
        }
        let now = ctx.now_ms;
        let stream = self.stream_mut(key, now)?;
        let last = stream.last_id.unwrap_or(StreamId::ZERO);
        let id = if id.as_slice() == b"*" {
            let ms = (now.max(0) as u64).max(last.0);
            if ms == last.0 && stream.last_id.is_some() {
                StreamId(ms, last.1 + 1)
            } else {
                StreamId(ms, 0)
            }
        } else {
            let id = StreamId::parse(id, 0)?;
            if id <= last {
                return Err(CmdError::new(
                    "ERR",
                    "The ID specified in XADD is equal or smaller than the target stream top item",
                ));
            }
            id
        };
        stream.entries.insert(id, Fields::pack(fields));
        stream.last_id = Some(id);
        if let Some(max) = maxlen {
            while stream.entries.len() > max {
                stream.entries.pop_first();
            }
        }
        ctx.journal(|| {
            let mut effect = vec![b"XADD".to_vec(), key.clone()];
            if let Some(max) = maxlen {
                effect.extend([b"MAXLEN".to_vec(), max.to_string().into_bytes()]);
            }
            effect.push(id.render());
            effect.extend(fields.iter().cloned());
            effect
        });
        ctx.stream_added = true;
        Ok(bulk(id.render()))
    }

    pub(super) fn xlen(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key] = a else {
            return arity("XLEN");
        };
        Ok(Value::Int(
            self.stream(key, now)?.map_or(0, |s| s.entries.len()) as i64,
        ))
    }

    pub(super) fn xrange(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key, start, end, rest @ ..] = a else {
            return arity("XRANGE");
        };
        let start = match start.as_slice() {
            b"-" => StreamId::ZERO,
            raw => StreamId::parse(raw, 0)?,
        };
        let end = match end.as_slice() {
            b"+" => StreamId(u64::MAX, u64::MAX),
            raw => StreamId::parse(raw, u64::MAX)?,
        };
        let count = match rest {
            [] => usize::MAX,
            [c, n] if c.eq_ignore_ascii_case(b"COUNT") => int(n)?.max(0) as usize,
            _ => return Err(CmdError::syntax()),
        };
        if start > end {
            return Ok(Value::Array(Vec::new()));
        }
        let Some(stream) = self.stream(key, now)? else {
            return Ok(Value::Array(Vec::new()));
        };
        Ok(Value::Array(
            stream
                .entries
                .range(start..=end)
                .take(count)
                .map(|(id, fields)| entry(*id, Some(fields)))
                .collect(),
        ))
    }

    pub(super) fn xdel(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, ids)) = args[1..].split_first() else {
            return arity("XDEL");
        };
        let ids = ids
            .iter()
            .map(|id| StreamId::parse(id, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let removed = match self.stream(key, ctx.now_ms)? {
            Some(s) => ids
                .iter()
                .filter(|id| s.entries.remove(id).is_some())
                .count(),
            None => 0,
        };
        record(ctx, args, removed > 0);
        Ok(Value::Int(removed as i64))
    }

    /// `XSETID key id`: the last id, which outlives the entry that had it.
    pub(super) fn xsetid(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let [key, id] = &args[1..] else {
            return arity("XSETID");
        };
        let id = StreamId::parse(id, 0)?;
        let stream = self.stream_mut(key, ctx.now_ms)?;
        if stream
            .entries
            .last_key_value()
            .is_some_and(|(top, _)| *top > id)
        {
            return Err(CmdError::new(
                "ERR",
                "The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        stream.last_id = Some(id);
        record(ctx, args, true);
        Ok(Value::Okay)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ok, run};
    use super::*;

    #[test]
    fn xadd_with_a_star_journals_the_id_it_chose() {
        let mut ks = Keyspace::default();
        let (id1, effects) = run(
            &mut ks,
            7,
            &["XADD", "s", "MAXLEN", "~", "2", "*", "k", "v"],
        );
        assert_eq!(id1, Ok(bulk("7-0")));
        assert_eq!(effects[0][4], b"7-0".to_vec());
        assert_eq!(
            run(&mut ks, 7, &["XADD", "s", "*", "k", "w"]).0,
            Ok(bulk("7-1"))
        );
        ok(&mut ks, 8, &["XADD", "s", "MAXLEN", "2", "*", "k", "x"]);
        assert_eq!(run(&mut ks, 8, &["XLEN", "s"]).0, Ok(Value::Int(2)));
    }
}

#[cfg(test)]
mod replaying {
    use super::super::testing::ok;
    use super::*;

    #[test]
    fn a_replayed_write_changes_the_state_and_journals_nothing() {
        let mut ks = Keyspace::default();
        let mut ctx = Ctx {
            now_ms: 7,
            replaying: true,
            ..Ctx::default()
        };
        let args: Vec<Vec<u8>> = ["XADD", "s", "7-0", "k", "v"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        ks.execute(&mut ctx, &args).unwrap();
        let hset: Vec<Vec<u8>> = ["HSET", "h", "f", "1"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        ks.execute(&mut ctx, &hset).unwrap();
        assert!(ctx.effects.is_empty(), "{:?}", ctx.effects);
        assert_eq!(ok(&mut ks, 8, &["XLEN", "s"]), Value::Int(1));
        assert_eq!(ok(&mut ks, 8, &["HGET", "h", "f"]), bulk("1"));
    }
}

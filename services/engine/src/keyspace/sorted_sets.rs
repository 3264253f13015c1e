//! Sorted set values: ZADD, ZREM and ZRANGEBYSCORE. A sorted set left without members is
//! removed, as in Redis.

use redis::Value;

use super::args::{float, int};
use super::reply::{CmdError, Reply, arity, bulk};
use super::{Ctx, Keyspace, record};

impl Keyspace {
    pub(super) fn zadd(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, pairs)) = args[1..].split_first() else {
            return arity("ZADD");
        };
        if pairs.is_empty() || pairs.len() % 2 != 0 {
            return arity("ZADD");
        }
        let mut scored = Vec::new();
        for p in pairs.chunks(2) {
            scored.push((float(&p[0])?, p[1].clone()));
        }
        let zset = self.zset_mut(key, ctx.now_ms)?;
        let added = scored
            .into_iter()
            .filter(|(score, member)| zset.insert(member.clone(), *score).is_none())
            .count();
        record(ctx, args, true);
        Ok(Value::Int(added as i64))
    }

    pub(super) fn zrem(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, members)) = args[1..].split_first() else {
            return arity("ZREM");
        };
        let removed = match self.zset(key, ctx.now_ms)? {
            Some(z) => members.iter().filter(|m| z.remove(*m).is_some()).count(),
            None => 0,
        };
        self.drop_if_empty(key);
        record(ctx, args, removed > 0);
        Ok(Value::Int(removed as i64))
    }

    /// `ZRANGEBYSCORE key min max [LIMIT offset count]`, ties in member order.
    pub(super) fn zrangebyscore(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key, min, max, rest @ ..] = a else {
            return arity("ZRANGEBYSCORE");
        };
        let (min, max) = (float(min)?, float(max)?);
        let (offset, count) = match rest {
            [] => (0, usize::MAX),
            [limit, offset, count] if limit.eq_ignore_ascii_case(b"LIMIT") => {
                let count = int(count)?;
                (
                    int(offset)?.max(0) as usize,
                    if count < 0 {
                        usize::MAX
                    } else {
                        count as usize
                    },
                )
            }
            _ => return Err(CmdError::syntax()),
        };
        let mut members: Vec<(f64, Vec<u8>)> = self
            .zset(key, now)?
            .into_iter()
            .flatten()
            .filter(|(_, s)| **s >= min && **s <= max)
            .map(|(m, s)| (*s, m.clone()))
            .collect();
        members.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
        Ok(Value::Array(
            members
                .into_iter()
                .skip(offset)
                .take(count)
                .map(|(_, m)| bulk(m))
                .collect(),
        ))
    }
}

//! Sorted set values: ZADD, ZREM and ZRANGEBYSCORE. A sorted set left without members is
//! removed, as in Redis.
//!
//! The members are kept in score order as well as by name, so that `ZRANGEBYSCORE … LIMIT`
//! reads only what it returns, as in Redis: the orders process asks every drop's deadlines
//! for the overdue few every second, under the engine's one lock, while the set holds every
//! order still waiting for payment.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use redis::Value;

use super::args::{float, int};
use super::reply::{CmdError, Reply, arity, bulk};
use super::{Ctx, HashMap, Keyspace, record};

/// A sorted set: each member's score, and the members ordered by score, then by member.
#[derive(Default)]
pub struct SortedSet {
    scores: HashMap<Vec<u8>, f64>,
    ordered: BTreeSet<(Score, Vec<u8>)>,
}

/// A score that orders totally (scores are never NaN: ZADD refuses one).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl SortedSet {
    /// Sets `member`'s score; its score before, if it was a member.
    pub fn insert(&mut self, member: Vec<u8>, score: f64) -> Option<f64> {
        // -0 and 0 are the same score (and order as one, ties by member).
        let score = score + 0.0;
        let before = self.scores.insert(member.clone(), score);
        if let Some(old) = before {
            self.ordered.remove(&(Score(old), member.clone()));
        }
        self.ordered.insert((Score(score), member));
        before
    }

    /// Removes `member`; its score, if it was a member.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (member, score) = self.scores.remove_entry(member)?;
        self.ordered.remove(&(Score(score), member));
        Some(score)
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Room for `members` more members' scores.
    pub fn reserve(&mut self, members: usize) {
        self.scores.reserve(members);
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Every member with its score, in score order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, f64)> {
        self.ordered.iter().map(|(score, member)| (member, score.0))
    }

    /// The members scored from `min` to `max` (both included), in score order.
    fn between(&self, min: f64, max: f64) -> impl Iterator<Item = &Vec<u8>> {
        self.ordered
            .range((Score(min + 0.0), Vec::new())..)
            .take_while(move |(score, _)| score.0 <= max)
            .map(|(_, member)| member)
    }
}

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
            let score = float(&p[0])?;
            if score.is_nan() {
                return Err(CmdError::new("ERR", "value is not a valid float"));
            }
            scored.push((score, p[1].clone()));
        }
        let zset = self.zset_mut(key, ctx.now_ms)?;
        if zset.is_empty() {
            // Sized once: a snapshot rebuilds each sorted set with one ZADD.
            zset.reserve(scored.len());
        }
        let mut added = 0;
        for (score, member) in scored {
            if zset.insert(member, score).is_none() {
                added += 1;
            }
        }
        record(ctx, args, true);
        Ok(Value::Int(added as i64))
    }

    pub(super) fn zrem(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, members)) = args[1..].split_first() else {
            return arity("ZREM");
        };
        let removed = match self.zset(key, ctx.now_ms)? {
            Some(z) => members.iter().filter(|m| z.remove(m).is_some()).count(),
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
        let members = match self.zset(key, now)? {
            Some(z) => z
                .between(min, max)
                .skip(offset)
                .take(count)
                .map(|m| bulk(m.clone()))
                .collect(),
            None => Vec::new(),
        };
        Ok(Value::Array(members))
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::super::testing::ok;
    use super::*;

    fn members(reply: Value) -> Vec<String> {
        let Value::Array(items) = reply else {
            panic!("{reply:?}")
        };
        items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_range_is_in_score_order_then_member_order_and_follows_new_scores() {
        let mut ks = Keyspace::default();
        ok(
            &mut ks,
            1,
            &["ZADD", "z", "3", "c", "1", "b", "1", "a", "-0", "n"],
        );
        ok(&mut ks, 1, &["ZADD", "z", "0", "m"]);
        let all = ["ZRANGEBYSCORE", "z", "-inf", "+inf"];
        assert_eq!(members(ok(&mut ks, 1, &all)), ["m", "n", "a", "b", "c"]);
        // A new score moves the member; its old place is gone.
        assert_eq!(ok(&mut ks, 1, &["ZADD", "z", "2", "a"]), Value::Int(0));
        assert_eq!(members(ok(&mut ks, 1, &all)), ["m", "n", "b", "a", "c"]);
        let limited = ["ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "1", "1"];
        assert_eq!(members(ok(&mut ks, 1, &limited)), ["a"]);
        assert_eq!(ok(&mut ks, 1, &["ZREM", "z", "a", "x"]), Value::Int(1));
        assert_eq!(
            members(ok(&mut ks, 1, &["ZRANGEBYSCORE", "z", "1", "3"])),
            ["b", "c"]
        );
    }

    #[test]
    fn a_score_that_is_not_a_number_is_refused() {
        let mut ks = Keyspace::default();
        let (reply, effects) = super::super::testing::run(&mut ks, 1, &["ZADD", "z", "nan", "a"]);
        assert_eq!(reply.unwrap_err().code, "ERR");
        assert!(effects.is_empty());
    }
}

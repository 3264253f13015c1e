//! Set values: SADD, SREM and SMEMBERS. A set left without members is removed, as in
//! Redis.

use redis::Value;

use super::reply::{Reply, arity, bulk};
use super::{Ctx, Keyspace, record};

impl Keyspace {
    pub(super) fn sadd(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, members)) = args[1..].split_first() else {
            return arity("SADD");
        };
        let set = self.set_mut(key, ctx.now_ms)?;
        if set.is_empty() {
            // Sized once: a snapshot rebuilds each set with one SADD.
            set.reserve(members.len());
        }
        let added = members.iter().filter(|m| set.insert(m.to_vec())).count();
        self.drop_if_empty(key);
        record(ctx, args, added > 0);
        Ok(Value::Int(added as i64))
    }

    pub(super) fn srem(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some((key, members)) = args[1..].split_first() else {
            return arity("SREM");
        };
        let removed = match self.set_of(key, ctx.now_ms)? {
            Some(s) => members.iter().filter(|m| s.remove(*m)).count(),
            None => 0,
        };
        self.drop_if_empty(key);
        record(ctx, args, removed > 0);
        Ok(Value::Int(removed as i64))
    }

    /// `SMEMBERS key`, in member order, so that answers do not depend on hashing.
    pub(super) fn smembers(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key] = a else {
            return arity("SMEMBERS");
        };
        let mut members: Vec<Vec<u8>> = self
            .set_of(key, now)?
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        members.sort();
        Ok(Value::Array(members.into_iter().map(bulk).collect()))
    }
}

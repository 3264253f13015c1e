//! Commands on keys whatever they hold: DEL, EXISTS, PEXPIRE and PEXPIREAT, FLUSHALL and
//! FLUSHDB. A deadline is journaled as the instant it names, so a replay later does not
//! extend it.

use redis::Value;

use super::args::int;
use super::reply::{Reply, arity};
use super::{Ctx, Keyspace, record};

impl Keyspace {
    pub(super) fn del(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let removed = args[1..].iter().filter(|key| self.remove(key)).count();
        record(ctx, args, removed > 0);
        Ok(Value::Int(removed as i64))
    }

    pub(super) fn exists(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        Ok(Value::Int(
            a.iter().filter(|k| self.live(k, now).is_some()).count() as i64,
        ))
    }

    /// `PEXPIRE key ms` or `PEXPIREAT key at-ms` (`name` says which).
    pub(super) fn pexpire(&mut self, ctx: &mut Ctx, name: &str, a: &[Vec<u8>]) -> Reply {
        let now = ctx.now_ms;
        let [key, ms] = a else { return arity(name) };
        let ms = int(ms)?;
        if self.live(key, now).is_none() {
            return Ok(Value::Int(0));
        }
        let at = if name == "PEXPIRE" { now + ms } else { ms };
        self.expires.insert(key.clone(), at);
        ctx.journal(|| {
            vec![
                b"PEXPIREAT".to_vec(),
                key.clone(),
                at.to_string().into_bytes(),
            ]
        });
        Ok(Value::Int(1))
    }

    pub(super) fn flushall(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        self.data.clear();
        self.expires.clear();
        record(ctx, args, true);
        Ok(Value::Okay)
    }
}

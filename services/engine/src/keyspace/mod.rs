//! The data and the commands: strings, hashes, sets, sorted sets and streams (with
//! consumer groups), and the subset of Redis commands linkdrop sends, with Redis's replies.
//!
//! A command runs against the keyspace with a [`Ctx`] that collects what must happen after
//! it: the effects to journal (each write in a form that replays to the same state) and the
//! messages to publish.

mod args;
mod groups;
mod reply;
mod snapshot;
mod streams;

use std::collections::{HashMap, HashSet};

use redis::Value;

pub use args::Args;
use args::{float, int};
pub use reply::{CmdError, Reply};
use reply::{arity, bulk};
pub use streams::{Stream, StreamId};

/// What one command leaves to do once it ran.
#[derive(Default)]
pub struct Ctx {
    /// Milliseconds since the epoch, the same for the whole command (or script).
    pub now_ms: i64,
    /// Writes to journal, in order; empty for a read.
    pub effects: Vec<Args>,
    /// Messages to publish once the effects are journaled: (channel, payload).
    pub published: Vec<(Vec<u8>, Vec<u8>)>,
    /// A stream got new entries: wake blocked readers.
    pub stream_added: bool,
}

pub enum Data {
    Str(Vec<u8>),
    Hash(HashMap<Vec<u8>, Vec<u8>>),
    Set(HashSet<Vec<u8>>),
    ZSet(HashMap<Vec<u8>, f64>),
    Stream(Stream),
}

/// Every key, and the deadlines of keys that expire.
#[derive(Default)]
pub struct Keyspace {
    data: HashMap<Vec<u8>, Data>,
    expires: HashMap<Vec<u8>, i64>,
}

macro_rules! typed {
    ($name:ident, $variant:ident, $ty:ty) => {
        /// The value at `key` if it is of this type (`None` when the key is absent).
        fn $name(&mut self, key: &[u8], now: i64) -> Result<Option<&mut $ty>, CmdError> {
            match self.live(key, now) {
                None => Ok(None),
                Some(Data::$variant(v)) => Ok(Some(v)),
                Some(_) => Err(CmdError::wrong_type()),
            }
        }
    };
}

macro_rules! typed_or_new {
    ($name:ident, $variant:ident, $ty:ty) => {
        /// The value at `key`, created empty when absent.
        fn $name(&mut self, key: &[u8], now: i64) -> Result<&mut $ty, CmdError> {
            if self.live(key, now).is_none() {
                self.data
                    .insert(key.to_vec(), Data::$variant(Default::default()));
            }
            match self.data.get_mut(key) {
                Some(Data::$variant(v)) => Ok(v),
                _ => Err(CmdError::wrong_type()),
            }
        }
    };
}

impl Keyspace {
    /// The value at `key`, removing it first when its deadline passed.
    fn live(&mut self, key: &[u8], now: i64) -> Option<&mut Data> {
        if self.expires.get(key).is_some_and(|at| *at <= now) {
            self.expires.remove(key);
            self.data.remove(key);
        }
        self.data.get_mut(key)
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        self.expires.remove(key);
        self.data.remove(key).is_some()
    }

    /// Drops a collection left empty, as Redis does.
    fn drop_if_empty(&mut self, key: &[u8]) {
        let empty = match self.data.get(key) {
            Some(Data::Hash(h)) => h.is_empty(),
            Some(Data::Set(s)) => s.is_empty(),
            Some(Data::ZSet(z)) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.remove(key);
        }
    }

    typed!(hash, Hash, HashMap<Vec<u8>, Vec<u8>>);
    typed!(set_of, Set, HashSet<Vec<u8>>);
    typed!(zset, ZSet, HashMap<Vec<u8>, f64>);
    typed!(stream, Stream, Stream);
    typed_or_new!(hash_mut, Hash, HashMap<Vec<u8>, Vec<u8>>);
    typed_or_new!(set_mut, Set, HashSet<Vec<u8>>);
    typed_or_new!(zset_mut, ZSet, HashMap<Vec<u8>, f64>);
    typed_or_new!(stream_mut, Stream, Stream);

    fn string(&mut self, key: &[u8], now: i64) -> Result<Option<&Vec<u8>>, CmdError> {
        match self.live(key, now) {
            None => Ok(None),
            Some(Data::Str(v)) => Ok(Some(v)),
            Some(_) => Err(CmdError::wrong_type()),
        }
    }

    /// Runs one command. Writes record their effect in `ctx`.
    pub fn execute(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let Some(name) = args.first() else {
            return Err(CmdError::new("ERR", "empty command"));
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let a = &args[1..];
        let now = ctx.now_ms;
        match name.as_str() {
            "PING" => Ok(Value::SimpleString("PONG".into())),
            "TIME" => {
                let (s, us) = (now / 1000, (now % 1000) * 1000);
                Ok(Value::Array(vec![
                    bulk(s.to_string()),
                    bulk(us.to_string()),
                ]))
            }
            "GET" => {
                let [key] = a else { return arity(&name) };
                Ok(self
                    .string(key, now)?
                    .map_or(Value::Nil, |v| bulk(v.clone())))
            }
            "SET" => self.set_string(ctx, a),
            "DEL" => {
                let removed = a.iter().filter(|key| self.remove(key)).count();
                record(ctx, args, removed > 0);
                Ok(Value::Int(removed as i64))
            }
            "EXISTS" => Ok(Value::Int(
                a.iter().filter(|k| self.live(k, now).is_some()).count() as i64,
            )),
            "INCR" => {
                let [key] = a else { return arity(&name) };
                let next = match self.string(key, now)? {
                    None => 1,
                    Some(v) => int(v)? + 1,
                };
                self.data
                    .insert(key.clone(), Data::Str(next.to_string().into_bytes()));
                record(ctx, args, true);
                Ok(Value::Int(next))
            }
            "PEXPIRE" | "PEXPIREAT" => {
                let [key, ms] = a else { return arity(&name) };
                let ms = int(ms)?;
                if self.live(key, now).is_none() {
                    return Ok(Value::Int(0));
                }
                let at = if name == "PEXPIRE" { now + ms } else { ms };
                self.expires.insert(key.clone(), at);
                ctx.effects.push(vec![
                    b"PEXPIREAT".to_vec(),
                    key.clone(),
                    at.to_string().into_bytes(),
                ]);
                Ok(Value::Int(1))
            }
            "HGET" => {
                let [key, field] = a else { return arity(&name) };
                let value = self.hash(key, now)?.and_then(|h| h.get(field).cloned());
                Ok(value.map_or(Value::Nil, bulk))
            }
            "HMGET" => {
                let Some((key, fields)) = a.split_first() else {
                    return arity(&name);
                };
                let hash = self.hash(key, now)?;
                Ok(Value::Array(
                    fields
                        .iter()
                        .map(|f| {
                            hash.as_ref()
                                .and_then(|h| h.get(f).cloned())
                                .map_or(Value::Nil, bulk)
                        })
                        .collect(),
                ))
            }
            "HGETALL" => {
                let [key] = a else { return arity(&name) };
                // In field order, so that answers do not depend on hashing.
                let mut pairs: Vec<(&Vec<u8>, &Vec<u8>)> = self
                    .hash(key, now)?
                    .into_iter()
                    .flat_map(|h| h.iter())
                    .collect();
                pairs.sort();
                let out = pairs
                    .into_iter()
                    .flat_map(|(f, v)| [bulk(f.clone()), bulk(v.clone())])
                    .collect();
                Ok(Value::Array(out))
            }
            "HKEYS" => {
                let [key] = a else { return arity(&name) };
                // In field order, so that answers do not depend on hashing.
                let mut fields: Vec<&Vec<u8>> = self
                    .hash(key, now)?
                    .into_iter()
                    .flat_map(|h| h.keys())
                    .collect();
                fields.sort();
                Ok(Value::Array(
                    fields.into_iter().map(|f| bulk(f.clone())).collect(),
                ))
            }
            "HLEN" => {
                let [key] = a else { return arity(&name) };
                Ok(Value::Int(
                    self.hash(key, now)?.map_or(0, |h| h.len()) as i64
                ))
            }
            "HSET" | "HMSET" => {
                let Some((key, pairs)) = a.split_first() else {
                    return arity(&name);
                };
                if pairs.is_empty() || pairs.len() % 2 != 0 {
                    return arity(&name);
                }
                let hash = self.hash_mut(key, now)?;
                let added = pairs
                    .chunks(2)
                    .filter(|p| hash.insert(p[0].clone(), p[1].clone()).is_none())
                    .count();
                record(ctx, args, true);
                Ok(if name == "HSET" {
                    Value::Int(added as i64)
                } else {
                    Value::Okay
                })
            }
            "HDEL" => {
                let Some((key, fields)) = a.split_first() else {
                    return arity(&name);
                };
                let removed = match self.hash(key, now)? {
                    Some(h) => fields.iter().filter(|f| h.remove(*f).is_some()).count(),
                    None => 0,
                };
                self.drop_if_empty(key);
                record(ctx, args, removed > 0);
                Ok(Value::Int(removed as i64))
            }
            "HINCRBY" => {
                let [key, field, by] = a else {
                    return arity(&name);
                };
                let by = int(by)?;
                let hash = self.hash_mut(key, now)?;
                let next = match hash.get(field) {
                    Some(v) => int(v)? + by,
                    None => by,
                };
                hash.insert(field.clone(), next.to_string().into_bytes());
                record(ctx, args, true);
                Ok(Value::Int(next))
            }
            "SADD" => {
                let Some((key, members)) = a.split_first() else {
                    return arity(&name);
                };
                let set = self.set_mut(key, now)?;
                let added = members.iter().filter(|m| set.insert(m.to_vec())).count();
                self.drop_if_empty(key);
                record(ctx, args, added > 0);
                Ok(Value::Int(added as i64))
            }
            "SREM" => {
                let Some((key, members)) = a.split_first() else {
                    return arity(&name);
                };
                let removed = match self.set_of(key, now)? {
                    Some(s) => members.iter().filter(|m| s.remove(*m)).count(),
                    None => 0,
                };
                self.drop_if_empty(key);
                record(ctx, args, removed > 0);
                Ok(Value::Int(removed as i64))
            }
            "SMEMBERS" => {
                let [key] = a else { return arity(&name) };
                let mut members: Vec<Vec<u8>> = self
                    .set_of(key, now)?
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                members.sort();
                Ok(Value::Array(members.into_iter().map(bulk).collect()))
            }
            "ZADD" => {
                let Some((key, pairs)) = a.split_first() else {
                    return arity(&name);
                };
                if pairs.is_empty() || pairs.len() % 2 != 0 {
                    return arity(&name);
                }
                let mut scored = Vec::new();
                for p in pairs.chunks(2) {
                    scored.push((float(&p[0])?, p[1].clone()));
                }
                let zset = self.zset_mut(key, now)?;
                let added = scored
                    .into_iter()
                    .filter(|(score, member)| zset.insert(member.clone(), *score).is_none())
                    .count();
                record(ctx, args, true);
                Ok(Value::Int(added as i64))
            }
            "ZREM" => {
                let Some((key, members)) = a.split_first() else {
                    return arity(&name);
                };
                let removed = match self.zset(key, now)? {
                    Some(z) => members.iter().filter(|m| z.remove(*m).is_some()).count(),
                    None => 0,
                };
                self.drop_if_empty(key);
                record(ctx, args, removed > 0);
                Ok(Value::Int(removed as i64))
            }
            "ZRANGEBYSCORE" => self.zrangebyscore(a, now),
            "PUBLISH" => {
                let [channel, message] = a else {
                    return arity(&name);
                };
                ctx.published.push((channel.clone(), message.clone()));
                Ok(Value::Int(1))
            }
            "XADD" => self.xadd(ctx, a),
            "XLEN" => self.xlen(a, now),
            "XRANGE" => self.xrange(a, now),
            "XDEL" => self.xdel(ctx, args),
            "XSETID" => self.xsetid(ctx, args),
            "XGROUP" => self.xgroup(ctx, args),
            "XACK" => self.xack(a, now),
            "XREADGROUP" => self.xreadgroup(a, now).map(|(reply, _)| reply),
            "XAUTOCLAIM" => self.xautoclaim(a, now),
            "CONFIG" => Ok(Value::Array(Vec::new())),
            "FLUSHALL" | "FLUSHDB" => {
                self.data.clear();
                self.expires.clear();
                record(ctx, args, true);
                Ok(Value::Okay)
            }
            _ => Err(CmdError::new(
                "ERR",
                format!(
                    "unknown command '{name}' (the embedded engine answers the commands linkdrop uses)"
                ),
            )),
        }
    }

    /// `SET key value [NX|XX] [PX ms|EX s]`. A value with a time to live (leases) is not
    /// journaled: it coordinates processes, and the process holding it is gone after a
    /// restart.
    fn set_string(&mut self, ctx: &mut Ctx, a: &[Vec<u8>]) -> Reply {
        let [key, value, options @ ..] = a else {
            return arity("SET");
        };
        let (mut nx, mut xx, mut ttl_ms) = (false, false, None);
        let mut i = 0;
        while i < options.len() {
            match options[i].to_ascii_uppercase().as_slice() {
                b"NX" => nx = true,
                b"XX" => xx = true,
                b"PX" | b"EX" => {
                    let n = int(options.get(i + 1).ok_or_else(CmdError::syntax)?)?;
                    let unit = if options[i].eq_ignore_ascii_case(b"EX") {
                        1000
                    } else {
                        1
                    };
                    ttl_ms = Some(n * unit);
                    i += 1;
                }
                _ => return Err(CmdError::syntax()),
            }
            i += 1;
        }
        let exists = self.live(key, ctx.now_ms).is_some();
        if (nx && exists) || (xx && !exists) {
            return Ok(Value::Nil);
        }
        self.data.insert(key.clone(), Data::Str(value.clone()));
        match ttl_ms {
            Some(ms) => {
                self.expires.insert(key.clone(), ctx.now_ms + ms);
            }
            None => {
                self.expires.remove(key.as_slice());
                ctx.effects
                    .push(vec![b"SET".to_vec(), key.clone(), value.clone()]);
            }
        }
        Ok(Value::Okay)
    }

    fn zrangebyscore(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
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

/// Journals the command as it was given (a deterministic write), when it changed anything.
fn record(ctx: &mut Ctx, args: &[Vec<u8>], changed: bool) {
    if changed {
        ctx.effects.push(args.to_vec());
    }
}

/// Running commands against a keyspace in unit tests.
#[cfg(test)]
mod testing {
    use super::*;

    /// A command's reply and the effects it journaled.
    pub(super) fn run(ks: &mut Keyspace, now_ms: i64, args: &[&str]) -> (Reply, Vec<Args>) {
        let mut ctx = Ctx {
            now_ms,
            ..Ctx::default()
        };
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let reply = ks.execute(&mut ctx, &args);
        (reply, ctx.effects)
    }

    /// Runs a command that must succeed; its reply.
    pub(super) fn ok(ks: &mut Keyspace, now_ms: i64, args: &[&str]) -> Value {
        run(ks, now_ms, args).0.expect("the command succeeds")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ok, run};
    use super::*;

    #[test]
    fn a_key_with_a_time_to_live_is_gone_after_it_and_is_not_journaled() {
        let mut ks = Keyspace::default();
        let (reply, effects) = run(&mut ks, 1_000, &["SET", "lease", "r1", "NX", "PX", "500"]);
        assert_eq!(reply, Ok(Value::Okay));
        assert!(effects.is_empty());
        assert_eq!(
            run(&mut ks, 1_400, &["SET", "lease", "r2", "NX", "PX", "500"]).0,
            Ok(Value::Nil)
        );
        assert_eq!(run(&mut ks, 1_500, &["GET", "lease"]).0, Ok(Value::Nil));
    }

    #[test]
    fn a_hash_emptied_is_removed() {
        let mut ks = Keyspace::default();
        ok(&mut ks, 1, &["HSET", "h", "f", "1"]);
        assert_eq!(
            run(&mut ks, 1, &["HINCRBY", "h", "f", "2"]).0,
            Ok(Value::Int(3))
        );
        ok(&mut ks, 1, &["HDEL", "h", "f"]);
        assert_eq!(run(&mut ks, 1, &["EXISTS", "h"]).0, Ok(Value::Int(0)));
        assert_eq!(run(&mut ks, 1, &["SET", "h", "x"]).0, Ok(Value::Okay));
        assert_eq!(
            run(&mut ks, 1, &["HGET", "h", "f"]).0.unwrap_err().code,
            "WRONGTYPE"
        );
    }
}

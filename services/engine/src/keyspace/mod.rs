//! The data and the commands: strings, hashes, sets, sorted sets and streams (with
//! consumer groups), and the subset of Redis commands linkdrop sends, with Redis's replies.
//!
//! A command runs against the keyspace with a [`Ctx`] that collects what must happen after
//! it: the effects to journal (each write in a form that replays to the same state) and the
//! messages to publish.

mod args;
mod reply;

use std::collections::{BTreeMap, HashMap, HashSet};

use redis::Value;

pub use args::Args;
use args::{float, int};
pub use reply::{CmdError, Reply};
use reply::{arity, bulk};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    const ZERO: StreamId = StreamId(0, 0);

    fn render(self) -> Vec<u8> {
        format!("{}-{}", self.0, self.1).into_bytes()
    }

    /// `ms-seq` or `ms` (then `seq` is `missing_seq`).
    fn parse(raw: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
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
    entries: BTreeMap<StreamId, Vec<Vec<u8>>>,
    last_id: Option<StreamId>,
    groups: HashMap<Vec<u8>, Group>,
}

#[derive(Default)]
struct Group {
    last_delivered: Option<StreamId>,
    /// Delivered, not acknowledged: to which consumer, when.
    pending: BTreeMap<StreamId, (Vec<u8>, i64)>,
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
    /// Writes that rebuild this keyspace from nothing, for compacting the journal. Keys
    /// with a time to live are left out (leases and viewer reports: the processes behind
    /// them are gone when the journal is next read). A consumer group restarts before its
    /// oldest unacknowledged entry, so everything still pending is delivered again.
    pub fn snapshot(&mut self, now: i64) -> Vec<Args> {
        let volatile: Vec<Vec<u8>> = self.expires.keys().cloned().collect();
        for key in &volatile {
            self.live(key, now);
        }
        let mut keys: Vec<&Vec<u8>> = self
            .data
            .keys()
            .filter(|k| !self.expires.contains_key(*k))
            .collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let command = |name: &str| vec![name.as_bytes().to_vec(), key.clone()];
            match &self.data[key] {
                Data::Str(v) => out.push([command("SET"), vec![v.clone()]].concat()),
                Data::Hash(h) => {
                    let mut c = command("HSET");
                    for (f, v) in h {
                        c.extend([f.clone(), v.clone()]);
                    }
                    out.push(c);
                }
                Data::Set(members) => {
                    out.push([command("SADD"), members.iter().cloned().collect()].concat())
                }
                Data::ZSet(z) => {
                    let mut c = command("ZADD");
                    for (m, score) in z {
                        c.extend([score.to_string().into_bytes(), m.clone()]);
                    }
                    out.push(c);
                }
                Data::Stream(stream) => out.extend(stream_snapshot(key, stream)),
            }
        }
        out
    }

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
            "XLEN" => {
                let [key] = a else { return arity(&name) };
                Ok(Value::Int(
                    self.stream(key, now)?.map_or(0, |s| s.entries.len()) as i64,
                ))
            }
            "XRANGE" => self.xrange(a, now),
            "XDEL" => {
                let Some((key, ids)) = a.split_first() else {
                    return arity(&name);
                };
                let ids = ids
                    .iter()
                    .map(|id| StreamId::parse(id, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let removed = match self.stream(key, now)? {
                    Some(s) => ids
                        .iter()
                        .filter(|id| s.entries.remove(id).is_some())
                        .count(),
                    None => 0,
                };
                record(ctx, args, removed > 0);
                Ok(Value::Int(removed as i64))
            }
            "XGROUP" => self.xgroup(ctx, args),
            "XSETID" => {
                let [key, id] = a else { return arity(&name) };
                let id = StreamId::parse(id, 0)?;
                let stream = self.stream_mut(key, now)?;
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
            "XACK" => {
                let [key, group, ids @ ..] = a else {
                    return arity(&name);
                };
                let ids = ids
                    .iter()
                    .map(|id| StreamId::parse(id, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let acked = match self
                    .stream(key, now)?
                    .and_then(|s| s.groups.get_mut(group.as_slice()))
                {
                    Some(g) => ids
                        .iter()
                        .filter(|id| g.pending.remove(id).is_some())
                        .count(),
                    None => 0,
                };
                Ok(Value::Int(acked as i64))
            }
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

    /// `XADD key [MAXLEN [~|=] n] id|* field value ...`. Trimming is exact; the journaled
    /// effect names the id given, so replay builds the same stream.
    fn xadd(&mut self, ctx: &mut Ctx, a: &[Vec<u8>]) -> Reply {
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
        stream.entries.insert(id, fields.to_vec());
        stream.last_id = Some(id);
        if let Some(max) = maxlen {
            while stream.entries.len() > max {
                stream.entries.pop_first();
            }
        }
        let mut effect = vec![b"XADD".to_vec(), key.clone()];
        if let Some(max) = maxlen {
            effect.extend([b"MAXLEN".to_vec(), max.to_string().into_bytes()]);
        }
        effect.push(id.render());
        effect.extend(fields.iter().cloned());
        ctx.effects.push(effect);
        ctx.stream_added = true;
        Ok(bulk(id.render()))
    }

    fn xrange(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
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

    /// `XGROUP CREATE key group id [MKSTREAM]` (and `DESTROY`).
    fn xgroup(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let now = ctx.now_ms;
        match &args[1..] {
            [sub, key, group, id, rest @ ..] if sub.eq_ignore_ascii_case(b"CREATE") => {
                let mkstream = rest.iter().any(|o| o.eq_ignore_ascii_case(b"MKSTREAM"));
                let stream = match self.stream(key, now)? {
                    Some(s) => s,
                    None if mkstream => self.stream_mut(key, now)?,
                    None => {
                        return Err(CmdError::new(
                            "ERR",
                            "The XGROUP subcommand requires the key to exist",
                        ));
                    }
                };
                if stream.groups.contains_key(group.as_slice()) {
                    return Err(CmdError::new(
                        "BUSYGROUP",
                        "Consumer Group name already exists",
                    ));
                }
                let last_delivered = match id.as_slice() {
                    b"$" => stream.last_id,
                    raw => Some(StreamId::parse(raw, 0)?),
                };
                stream.groups.insert(
                    group.clone(),
                    Group {
                        last_delivered,
                        pending: BTreeMap::new(),
                    },
                );
                // Replays the same: `$` becomes the id it meant.
                let id = last_delivered.unwrap_or(StreamId::ZERO).render();
                ctx.effects.push(vec![
                    b"XGROUP".to_vec(),
                    b"CREATE".to_vec(),
                    key.clone(),
                    group.clone(),
                    id,
                    b"MKSTREAM".to_vec(),
                ]);
                Ok(Value::Okay)
            }
            [sub, key, group] if sub.eq_ignore_ascii_case(b"DESTROY") => {
                let removed = self
                    .stream(key, now)?
                    .is_some_and(|s| s.groups.remove(group.as_slice()).is_some());
                record(ctx, args, removed);
                Ok(Value::Int(i64::from(removed)))
            }
            _ => Err(CmdError::syntax()),
        }
    }

    /// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS k.. id..`; also says
    /// whether the caller should wait (BLOCK given and nothing new). Deliveries are not
    /// journaled: after a restart every entry still in a stream is delivered again, which
    /// is what readers that acknowledge and delete (the relay) expect.
    pub fn xreadgroup(
        &mut self,
        a: &[Vec<u8>],
        now: i64,
    ) -> Result<(Value, Option<i64>), CmdError> {
        let read = ReadGroup::parse(a)?;
        let mut out = Vec::new();
        for (key, from) in read.streams.iter().zip(&read.ids) {
            let Some(stream) = self.stream(key, now)? else {
                return Err(no_group(key, &read.group));
            };
            let Some(group) = stream.groups.get_mut(read.group.as_slice()) else {
                return Err(no_group(key, &read.group));
            };
            if from.as_slice() == b">" {
                let after = group.last_delivered.unwrap_or(StreamId::ZERO);
                let fresh: Vec<(StreamId, Vec<Vec<u8>>)> = stream
                    .entries
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(read.count)
                    .map(|(id, f)| (*id, f.clone()))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                for (id, _) in &fresh {
                    group.pending.insert(*id, (read.consumer.clone(), now));
                }
                group.last_delivered = fresh.last().map(|(id, _)| *id);
                let entries = fresh.iter().map(|(id, f)| entry(*id, Some(f))).collect();
                out.push(Value::Array(vec![bulk(key.clone()), Value::Array(entries)]));
            } else {
                let after = StreamId::parse(from, 0)?;
                let mine: Vec<StreamId> = group
                    .pending
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .filter(|(_, (c, _))| *c == read.consumer)
                    .map(|(id, _)| *id)
                    .take(read.count)
                    .collect();
                let entries = mine
                    .iter()
                    .map(|id| entry(*id, stream.entries.get(id)))
                    .collect();
                out.push(Value::Array(vec![bulk(key.clone()), Value::Array(entries)]));
            }
        }
        if out.is_empty() {
            return Ok((Value::Nil, read.block_ms));
        }
        Ok((Value::Array(out), None))
    }

    /// `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`.
    fn xautoclaim(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key, group, consumer, min_idle, start, rest @ ..] = a else {
            return arity("XAUTOCLAIM");
        };
        let min_idle = int(min_idle)?;
        let start = StreamId::parse(start, 0)?;
        let (mut count, mut just_id) = (100usize, false);
        let mut i = 0;
        while i < rest.len() {
            if rest[i].eq_ignore_ascii_case(b"COUNT") {
                count = int(rest.get(i + 1).ok_or_else(CmdError::syntax)?)?.max(1) as usize;
                i += 1;
            } else if rest[i].eq_ignore_ascii_case(b"JUSTID") {
                just_id = true;
            } else {
                return Err(CmdError::syntax());
            }
            i += 1;
        }
        let Some(stream) = self.stream(key, now)? else {
            return Err(no_group(key, group));
        };
        let Some(g) = stream.groups.get_mut(group.as_slice()) else {
            return Err(no_group(key, group));
        };
        let scanned: Vec<StreamId> = g.pending.range(start..).map(|(id, _)| *id).collect();
        let next = scanned.get(count).copied().unwrap_or(StreamId::ZERO);
        let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
        for id in scanned.into_iter().take(count) {
            if !stream.entries.contains_key(&id) {
                // As Redis 7: a pending entry deleted from the stream leaves the group.
                g.pending.remove(&id);
                deleted.push(bulk(id.render()));
                continue;
            }
            let (owner, at) = g.pending.get_mut(&id).expect("scanned from pending");
            if now - *at >= min_idle {
                *owner = consumer.clone();
                *at = now;
                claimed.push(id);
            }
        }
        let claimed = claimed
            .into_iter()
            .map(|id| {
                if just_id {
                    bulk(id.render())
                } else {
                    entry(id, stream.entries.get(&id))
                }
            })
            .collect();
        Ok(Value::Array(vec![
            bulk(next.render()),
            Value::Array(claimed),
            Value::Array(deleted),
        ]))
    }
}

/// The writes that rebuild one stream: its entries, its last id, its groups.
fn stream_snapshot(key: &[u8], stream: &Stream) -> Vec<Args> {
    let mut out = Vec::new();
    for (id, fields) in &stream.entries {
        out.push(
            [
                vec![b"XADD".to_vec(), key.to_vec(), id.render()],
                fields.clone(),
            ]
            .concat(),
        );
    }
    let last = stream.last_id.unwrap_or(StreamId::ZERO);
    out.push(vec![b"XSETID".to_vec(), key.to_vec(), last.render()]);
    for (name, group) in &stream.groups {
        let delivered = group.last_delivered.unwrap_or(StreamId::ZERO);
        let restart = match group.pending.keys().next() {
            Some(oldest) => before(*oldest).min(delivered),
            None => delivered,
        };
        out.push(vec![
            b"XGROUP".to_vec(),
            b"CREATE".to_vec(),
            key.to_vec(),
            name.clone(),
            restart.render(),
            b"MKSTREAM".to_vec(),
        ]);
    }
    out
}

/// The id just before `id`.
fn before(id: StreamId) -> StreamId {
    match id {
        StreamId(0, 0) => StreamId::ZERO,
        StreamId(ms, 0) => StreamId(ms - 1, u64::MAX),
        StreamId(ms, seq) => StreamId(ms, seq - 1),
    }
}

struct ReadGroup {
    group: Vec<u8>,
    consumer: Vec<u8>,
    count: usize,
    block_ms: Option<i64>,
    streams: Vec<Vec<u8>>,
    ids: Vec<Vec<u8>>,
}

impl ReadGroup {
    fn parse(a: &[Vec<u8>]) -> Result<Self, CmdError> {
        let [g, group, consumer, rest @ ..] = a else {
            return arity("XREADGROUP");
        };
        if !g.eq_ignore_ascii_case(b"GROUP") {
            return Err(CmdError::syntax());
        }
        let (mut count, mut block_ms) = (usize::MAX, None);
        let mut i = 0;
        loop {
            let option = rest.get(i).ok_or_else(CmdError::syntax)?;
            match option.to_ascii_uppercase().as_slice() {
                b"COUNT" => {
                    count = int(rest.get(i + 1).ok_or_else(CmdError::syntax)?)?.max(1) as usize
                }
                b"BLOCK" => block_ms = Some(int(rest.get(i + 1).ok_or_else(CmdError::syntax)?)?),
                b"NOACK" => {
                    i += 1;
                    continue;
                }
                b"STREAMS" => break,
                _ => return Err(CmdError::syntax()),
            }
            i += 2;
        }
        let keys_and_ids = &rest[i + 1..];
        if keys_and_ids.is_empty() || keys_and_ids.len() % 2 != 0 {
            return Err(CmdError::new(
                "ERR",
                "Unbalanced 'xreadgroup' list of streams",
            ));
        }
        let (streams, ids) = keys_and_ids.split_at(keys_and_ids.len() / 2);
        Ok(Self {
            group: group.clone(),
            consumer: consumer.clone(),
            count,
            block_ms,
            streams: streams.to_vec(),
            ids: ids.to_vec(),
        })
    }
}

fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::new(
        "NOGROUP",
        format!(
            "No such key '{}' or consumer group '{}'",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(group)
        ),
    )
}

/// A stream entry as Redis sends it: `[id, [field, value, ...]]`, the fields nil when the
/// entry was deleted.
fn entry(id: StreamId, fields: Option<&Vec<Vec<u8>>>) -> Value {
    Value::Array(vec![
        bulk(id.render()),
        fields.map_or(Value::Nil, |f| {
            Value::Array(f.iter().cloned().map(bulk).collect())
        }),
    ])
}

/// Journals the command as it was given (a deterministic write), when it changed anything.
fn record(ctx: &mut Ctx, args: &[Vec<u8>], changed: bool) {
    if changed {
        ctx.effects.push(args.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ks: &mut Keyspace, now_ms: i64, args: &[&str]) -> (Reply, Vec<Args>) {
        let mut ctx = Ctx {
            now_ms,
            ..Ctx::default()
        };
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let reply = ks.execute(&mut ctx, &args);
        (reply, ctx.effects)
    }

    /// Runs a command that must succeed; its reply.
    fn ok(ks: &mut Keyspace, now_ms: i64, args: &[&str]) -> Value {
        run(ks, now_ms, args).0.expect("the command succeeds")
    }

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

    #[test]
    fn a_group_delivers_each_entry_once_until_it_is_claimed() {
        let mut ks = Keyspace::default();
        ok(&mut ks, 1, &["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"]);
        assert_eq!(
            run(&mut ks, 1, &["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"])
                .0
                .unwrap_err()
                .code,
            "BUSYGROUP"
        );
        ok(&mut ks, 2, &["XADD", "s", "*", "k", "v"]);
        let read = |ks: &mut Keyspace, consumer: &str, from: &str| {
            run(
                ks,
                3,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    consumer,
                    "COUNT",
                    "10",
                    "STREAMS",
                    "s",
                    from,
                ],
            )
            .0
        };
        let first = read(&mut ks, "a", ">").unwrap();
        assert_ne!(first, Value::Nil);
        assert_eq!(
            read(&mut ks, "a", ">").unwrap(),
            Value::Nil,
            "delivered once"
        );
        assert_eq!(read(&mut ks, "a", "0").unwrap(), first, "pending for a");
        ok(
            &mut ks,
            4,
            &[
                "XAUTOCLAIM",
                "s",
                "g",
                "b",
                "0",
                "0-0",
                "COUNT",
                "10",
                "JUSTID",
            ],
        );
        assert_eq!(read(&mut ks, "b", "0").unwrap(), first, "now b's");
        ok(&mut ks, 5, &["XACK", "s", "g", "2-0"]);
        assert_eq!(
            read(&mut ks, "b", "0").unwrap(),
            Value::Array(vec![Value::Array(vec![bulk("s"), Value::Array(vec![])])])
        );
    }

    #[test]
    fn a_snapshot_rebuilds_the_state_and_redelivers_what_is_pending() {
        let mut ks = Keyspace::default();
        ok(&mut ks, 1, &["HSET", "h", "a", "1", "b", "2"]);
        ok(&mut ks, 1, &["SADD", "s", "x"]);
        ok(&mut ks, 1, &["ZADD", "z", "1.5", "m"]);
        ok(&mut ks, 1, &["SET", "k", "v"]);
        ok(&mut ks, 1, &["SET", "lease", "r", "PX", "1000"]);
        ok(&mut ks, 1, &["XGROUP", "CREATE", "o", "g", "0", "MKSTREAM"]);
        for _ in 0..3 {
            ok(&mut ks, 5, &["XADD", "o", "*", "f", "v"]);
        }
        let read = [
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "2",
            "STREAMS",
            "o",
            ">",
        ];
        ok(&mut ks, 6, &read);
        ok(&mut ks, 6, &["XACK", "o", "g", "5-0"]);
        ok(&mut ks, 6, &["XDEL", "o", "5-0", "5-2"]);

        let mut rebuilt = Keyspace::default();
        for effect in ks.snapshot(7) {
            let mut ctx = Ctx {
                now_ms: 7,
                ..Ctx::default()
            };
            rebuilt
                .execute(&mut ctx, &effect)
                .expect("a snapshot replays");
        }
        for probe in [
            ["HGETALL", "h"],
            ["SMEMBERS", "s"],
            ["GET", "k"],
            ["XLEN", "o"],
        ] {
            let probe = probe.as_slice();
            assert_eq!(
                run(&mut rebuilt, 7, probe).0,
                run(&mut ks, 7, probe).0,
                "{probe:?}"
            );
        }
        assert_eq!(
            run(&mut rebuilt, 7, &["GET", "lease"]).0,
            Ok(Value::Nil),
            "leases stay out"
        );
        assert_eq!(
            run(&mut rebuilt, 8, &["XADD", "o", "5-2", "f", "v"])
                .0
                .unwrap_err()
                .code,
            "ERR",
            "the last id survives its entry's deletion"
        );
        // 5-1 was delivered and not acknowledged: it comes again.
        let again = ok(
            &mut rebuilt,
            8,
            &["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "o", ">"],
        );
        let Value::Array(streams) = again else {
            panic!("{again:?}")
        };
        let Value::Array(stream) = &streams[0] else {
            panic!()
        };
        assert_eq!(
            stream[1],
            Value::Array(vec![entry(
                StreamId(5, 1),
                Some(&vec![b"f".to_vec(), b"v".to_vec()])
            )])
        );
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

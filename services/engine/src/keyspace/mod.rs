//! The data and the commands: strings, hashes, sets, sorted sets and streams (with
//! consumer groups), and the subset of Redis commands linkdrop sends, with Redis's replies.
//!
//! A command runs against the keyspace with a [`Ctx`] that collects what must happen after
//! it: the effects to journal (each write in a form that replays to the same state) and the
//! messages to publish.
//!
//! This file owns the keyspace itself: its values, their expiry, and the one dispatch from a
//! command's name to its handler. Each kind of value has its commands in its own file
//! (`strings.rs`, `hashes.rs`, `sets.rs`, `sorted_sets.rs`, `streams.rs`, and consumer
//! groups in `groups.rs`); commands on keys of any kind are in `keys.rs`, those on no key in
//! `server.rs`; `snapshot.rs` writes the keyspace back as commands for the journal. A handler
//! that journals its command as given takes the whole command (`args`, name first); the
//! others take its arguments.

mod args;
mod groups;
mod hashes;
mod keys;
mod reply;
mod server;
mod sets;
mod snapshot;
mod sorted_sets;
mod streams;
mod strings;

/// The keyspace's maps and sets: hashed with foldhash, seeded at random per process
/// (SipHash, the standard library's, was an eighth of a replay's time).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub use args::Args;
pub use reply::{CmdError, Reply};
pub use sorted_sets::SortedSet;
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
    /// The command is a journaled write applied again (opening the engine): nothing to
    /// journal, so its effects are not collected.
    pub replaying: bool,
}

impl Ctx {
    /// Journals one write; `effect` is built only when it is to be journaled.
    pub(crate) fn journal(&mut self, effect: impl FnOnce() -> Args) {
        if !self.replaying {
            self.effects.push(effect());
        }
    }
}

pub enum Data {
    Str(Vec<u8>),
    Hash(HashMap<Vec<u8>, Vec<u8>>),
    Set(HashSet<Vec<u8>>),
    ZSet(SortedSet),
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
    /// Takes in the keys of `other`, which holds none of this keyspace's.
    pub fn merge(&mut self, other: Keyspace) {
        self.data.extend(other.data);
        self.expires.extend(other.expires);
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
    typed!(zset, ZSet, SortedSet);
    typed!(stream, Stream, Stream);
    typed_or_new!(hash_mut, Hash, HashMap<Vec<u8>, Vec<u8>>);
    typed_or_new!(set_mut, Set, HashSet<Vec<u8>>);
    typed_or_new!(zset_mut, ZSet, SortedSet);
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
            "PING" => server::ping(),
            "TIME" => server::time(now),
            "CONFIG" => server::config(),
            "PUBLISH" => server::publish(ctx, a),
            "DEL" => self.del(ctx, args),
            "EXISTS" => self.exists(a, now),
            "PEXPIRE" | "PEXPIREAT" => self.pexpire(ctx, &name, a),
            "FLUSHALL" | "FLUSHDB" => self.flushall(ctx, args),
            "GET" => self.get(a, now),
            "SET" => self.set_string(ctx, a),
            "INCR" => self.incr(ctx, args),
            "HGET" => self.hget(a, now),
            "HMGET" => self.hmget(a, now),
            "HGETALL" => self.hgetall(a, now),
            "HKEYS" => self.hkeys(a, now),
            "HLEN" => self.hlen(a, now),
            "HSET" | "HMSET" => self.hset(ctx, &name, args),
            "HDEL" => self.hdel(ctx, args),
            "HINCRBY" => self.hincrby(ctx, args),
            "SADD" => self.sadd(ctx, args),
            "SREM" => self.srem(ctx, args),
            "SMEMBERS" => self.smembers(a, now),
            "ZADD" => self.zadd(ctx, args),
            "ZREM" => self.zrem(ctx, args),
            "ZRANGEBYSCORE" => self.zrangebyscore(a, now),
            "XADD" => self.xadd(ctx, a),
            "XLEN" => self.xlen(a, now),
            "XRANGE" => self.xrange(a, now),
            "XDEL" => self.xdel(ctx, args),
            "XSETID" => self.xsetid(ctx, args),
            "XGROUP" => self.xgroup(ctx, args),
            "XACK" => self.xack(a, now),
            "XREADGROUP" => self.xreadgroup(a, now).map(|(reply, _)| reply),
            "XAUTOCLAIM" => self.xautoclaim(a, now),
            _ => Err(CmdError::new(
                "ERR",
                format!(
                    "unknown command '{name}' (the embedded engine answers the commands linkdrop uses)"
                ),
            )),
        }
    }
}

/// Journals the command as it was given (a deterministic write), when it changed anything.
fn record(ctx: &mut Ctx, args: &[Vec<u8>], changed: bool) {
    if changed {
        ctx.journal(|| args.to_vec());
    }
}

/// Running commands against a keyspace in unit tests.
#[cfg(test)]
mod testing {
    use redis::Value;

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

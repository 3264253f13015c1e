//! What the journal keeps when it compacts: the keyspace written back as the commands that
//! rebuild it. Replaying a snapshot must give the state it was taken from, less what is
//! meant to end with the processes (keys with a time to live, deliveries not acknowledged).

use super::streams::{Stream, StreamId};
use super::{Data, Keyspace};
use crate::entry::Entry;

impl Keyspace {
    /// The journal entry that rebuilds this keyspace from nothing, for compacting the
    /// journal: written straight into the entry's bytes (a copy of every value, no
    /// allocation per value), since every command waits while it is taken. Keys with a time
    /// to live are left out (leases and viewer reports: the processes behind them are gone
    /// when the journal is next read). A consumer group restarts before its oldest
    /// unacknowledged entry, so everything still pending is delivered again.
    pub fn snapshot(&mut self, now: i64) -> Entry {
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
        let mut out = Entry::with_capacity(keys.iter().map(|k| self.data[*k].size()).sum());
        for key in keys {
            let mut command = |name: &[u8], argc: usize| {
                out.effect(2 + argc);
                out.arg(name);
                out.arg(key);
            };
            match &self.data[key] {
                Data::Str(v) => {
                    command(b"SET", 1);
                    out.arg(v);
                }
                Data::Hash(h) => {
                    command(b"HSET", 2 * h.len());
                    for (f, v) in h {
                        out.arg(f);
                        out.arg(v);
                    }
                }
                Data::Set(members) => {
                    command(b"SADD", members.len());
                    for m in members {
                        out.arg(m);
                    }
                }
                Data::ZSet(z) => {
                    command(b"ZADD", 2 * z.len());
                    for (m, score) in z.iter() {
                        out.arg(score.to_string().as_bytes());
                        out.arg(m);
                    }
                }
                Data::Stream(stream) => stream_snapshot(key, stream, &mut out),
            }
        }
        out
    }
}

impl Data {
    /// About the bytes its snapshot takes (a little more: lengths and names of the commands).
    fn size(&self) -> usize {
        const HEAD: usize = 64;
        HEAD + match self {
            Data::Str(v) => v.len(),
            Data::Hash(h) => h.iter().map(|(f, v)| 8 + f.len() + v.len()).sum(),
            Data::Set(members) => members.iter().map(|m| 4 + m.len()).sum(),
            Data::ZSet(z) => z.iter().map(|(m, _)| 8 + 24 + m.len()).sum(),
            Data::Stream(s) => s.entries.values().map(|f| HEAD + f.bytes()).sum(),
        }
    }
}

/// The writes that rebuild one stream: its entries, its last id, its groups.
fn stream_snapshot(key: &[u8], stream: &Stream, out: &mut Entry) {
    for (id, fields) in &stream.entries {
        out.effect(3 + fields.iter().count());
        out.arg(b"XADD");
        out.arg(key);
        out.arg(&id.render());
        for item in fields.iter() {
            out.arg(item);
        }
    }
    let last = stream.last_id.unwrap_or(StreamId::ZERO);
    out.effect(3);
    for arg in [&b"XSETID"[..], key, &last.render()] {
        out.arg(arg);
    }
    for (name, group) in &stream.groups {
        let delivered = group.last_delivered.unwrap_or(StreamId::ZERO);
        let restart = match group.pending.keys().next() {
            Some(oldest) => before(*oldest).min(delivered),
            None => delivered,
        };
        out.effect(6);
        for arg in [
            &b"XGROUP"[..],
            b"CREATE",
            key,
            name,
            &restart.render(),
            b"MKSTREAM",
        ] {
            out.arg(arg);
        }
    }
}

/// The id just before `id`.
fn before(id: StreamId) -> StreamId {
    match id {
        StreamId(0, 0) => StreamId::ZERO,
        StreamId(ms, 0) => StreamId(ms - 1, u64::MAX),
        StreamId(ms, seq) => StreamId(ms, seq - 1),
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::super::Ctx;
    use super::super::streams::{Fields, entry};
    use super::super::testing::{ok, run};
    use super::*;

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
        let snapshot = ks.snapshot(7).finish();
        let replayed = crate::entry::for_each_effect(&snapshot, &mut Vec::new(), |effect| {
            let mut ctx = Ctx {
                now_ms: 7,
                ..Ctx::default()
            };
            rebuilt
                .execute(&mut ctx, effect)
                .expect("a snapshot replays");
        });
        assert!(replayed.is_some());
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
                Some(&Fields::pack(&[b"f".to_vec(), b"v".to_vec()]))
            )])
        );
    }
}

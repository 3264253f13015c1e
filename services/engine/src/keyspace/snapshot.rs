//! What the journal keeps when it compacts: the keyspace written back as the commands that
//! rebuild it. Replaying a snapshot must give the state it was taken from, less what is
//! meant to end with the processes (keys with a time to live, deliveries not acknowledged).

use super::streams::{Stream, StreamId};
use super::{Args, Data, Keyspace};

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
                    for (m, score) in z.iter() {
                        c.extend([score.to_string().into_bytes(), m.clone()]);
                    }
                    out.push(c);
                }
                Data::Stream(stream) => out.extend(stream_snapshot(key, stream)),
            }
        }
        out
    }
}

/// The writes that rebuild one stream: its entries, its last id, its groups.
fn stream_snapshot(key: &[u8], stream: &Stream) -> Vec<Args> {
    let mut out = Vec::new();
    for (id, fields) in &stream.entries {
        out.push(
            [
                vec![b"XADD".to_vec(), key.to_vec(), id.render()],
                fields.iter().map(<[u8]>::to_vec).collect(),
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
                Some(&Fields::pack(&[b"f".to_vec(), b"v".to_vec()]))
            )])
        );
    }
}

//! The engine answers like Redis: random sequences of the commands linkdrop sends (strings,
//! hashes, sets, sorted sets, streams and their consumer groups as the relay uses them;
//! keys reused across types so that wrong-type errors happen too) run against the stack's Redis and against the engine, and every reply must
//! be the same (errors by their code). The engine runs on a journal; reopened from it, it
//! must hold what it held. Needs the stack's Redis (`scripts/stack up`).

use std::sync::OnceLock;

use linkdrop_engine::{Engine, JournalOptions};
use proptest::prelude::*;
use redis::Value;
use redis::aio::MultiplexedConnection;

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Set {
        key: usize,
        value: u8,
        nx: bool,
    },
    Get {
        key: usize,
    },
    Del {
        key: usize,
    },
    Incr {
        key: usize,
    },
    Exists {
        key: usize,
    },
    HSet {
        key: usize,
        field: u8,
        value: u8,
    },
    HGet {
        key: usize,
        field: u8,
    },
    HMGet {
        key: usize,
    },
    HDel {
        key: usize,
        field: u8,
    },
    HIncrBy {
        key: usize,
        field: u8,
        by: i8,
    },
    HLen {
        key: usize,
    },
    HKeys {
        key: usize,
    },
    SAdd {
        key: usize,
        member: u8,
    },
    SRem {
        key: usize,
        member: u8,
    },
    ZAdd {
        key: usize,
        score: i8,
        member: u8,
    },
    ZRem {
        key: usize,
        member: u8,
    },
    ZRange {
        key: usize,
        max: i8,
        limit: u8,
    },
    /// XADD with the id `n-0`, `n` from the test (an id at or below the top fails).
    XAdd {
        key: usize,
        n: u8,
    },
    XDel {
        key: usize,
        n: u8,
    },
    XLen {
        key: usize,
    },
    XGroupCreate {
        key: usize,
    },
    /// XREADGROUP of consumer `consumer`: new entries, or its pending ones.
    XReadGroup {
        key: usize,
        consumer: u8,
        pending: bool,
        count: u8,
    },
    XAck {
        key: usize,
        n: u8,
    },
    /// XAUTOCLAIM of everything pending (idle 0) for `consumer`.
    XAutoClaim {
        key: usize,
        consumer: u8,
        just_id: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        1 => (key.clone(), 0u8..4, any::<bool>()).prop_map(|(key, value, nx)| Op::Set {
            key,
            value,
            nx
        }),
        1 => key.clone().prop_map(|key| Op::Get { key }),
        1 => key.clone().prop_map(|key| Op::Del { key }),
        1 => key.clone().prop_map(|key| Op::Incr { key }),
        1 => key.clone().prop_map(|key| Op::Exists { key }),
        1 => (key.clone(), 0u8..3, 0u8..4).prop_map(|(key, field, value)| Op::HSet {
            key,
            field,
            value
        }),
        1 => (key.clone(), 0u8..3).prop_map(|(key, field)| Op::HGet { key, field }),
        1 => key.clone().prop_map(|key| Op::HMGet { key }),
        1 => (key.clone(), 0u8..3).prop_map(|(key, field)| Op::HDel { key, field }),
        1 => (key.clone(), 0u8..3, -3i8..4).prop_map(|(key, field, by)| Op::HIncrBy { key, field, by }),
        1 => key.clone().prop_map(|key| Op::HLen { key }),
        1 => key.clone().prop_map(|key| Op::HKeys { key }),
        1 => (key.clone(), 0u8..4).prop_map(|(key, member)| Op::SAdd { key, member }),
        1 => (key.clone(), 0u8..4).prop_map(|(key, member)| Op::SRem { key, member }),
        1 => (key.clone(), -3i8..4, 0u8..4).prop_map(|(key, score, member)| Op::ZAdd {
            key,
            score,
            member
        }),
        1 => (key.clone(), 0u8..4).prop_map(|(key, member)| Op::ZRem { key, member }),
        1 => (key.clone(), -3i8..4, 0u8..4).prop_map(|(key, max, limit)| Op::ZRange { key, max, limit }),
        // Streams weigh more, with few ids, so that deliveries, acknowledgements, deletions
        // and claims meet on the same entries.
        3 => (key.clone(), 1u8..7).prop_map(|(key, n)| Op::XAdd { key, n }),
        2 => (key.clone(), 1u8..7).prop_map(|(key, n)| Op::XDel { key, n }),
        1 => key.clone().prop_map(|key| Op::XLen { key }),
        2 => key.clone().prop_map(|key| Op::XGroupCreate { key }),
        3 => (key.clone(), 0u8..2, any::<bool>(), 1u8..4).prop_map(|(key, consumer, pending, count)| {
            Op::XReadGroup {
                key,
                consumer,
                pending,
                count,
            }
        }),
        2 => (key.clone(), 1u8..7).prop_map(|(key, n)| Op::XAck { key, n }),
        2 => (key, 0u8..2, any::<bool>()).prop_map(|(key, consumer, just_id)| Op::XAutoClaim {
            key,
            consumer,
            just_id
        }),
    ]
}

/// The command of `op`, its keys under `prefix`.
fn command(op: &Op, prefix: &str) -> redis::Cmd {
    let k = |key: &usize| format!("{prefix}{}", KEYS[*key]);
    match op {
        Op::Set { key, value, nx } => {
            let mut c = redis::cmd("SET");
            c.arg(k(key)).arg(value);
            if *nx {
                c.arg("NX");
            }
            c
        }
        Op::Get { key } => redis::cmd("GET").arg(k(key)).clone(),
        Op::Del { key } => redis::cmd("DEL").arg(k(key)).clone(),
        Op::Incr { key } => redis::cmd("INCR").arg(k(key)).clone(),
        Op::Exists { key } => redis::cmd("EXISTS").arg(k(key)).clone(),
        Op::HSet { key, field, value } => {
            redis::cmd("HSET").arg(k(key)).arg(field).arg(value).clone()
        }
        Op::HGet { key, field } => redis::cmd("HGET").arg(k(key)).arg(field).clone(),
        Op::HMGet { key } => redis::cmd("HMGET").arg(k(key)).arg(0).arg(1).arg(2).clone(),
        Op::HDel { key, field } => redis::cmd("HDEL").arg(k(key)).arg(field).clone(),
        Op::HIncrBy { key, field, by } => {
            redis::cmd("HINCRBY").arg(k(key)).arg(field).arg(by).clone()
        }
        Op::HLen { key } => redis::cmd("HLEN").arg(k(key)).clone(),
        Op::HKeys { key } => redis::cmd("HKEYS").arg(k(key)).clone(),
        Op::SAdd { key, member } => redis::cmd("SADD").arg(k(key)).arg(member).clone(),
        Op::SRem { key, member } => redis::cmd("SREM").arg(k(key)).arg(member).clone(),
        Op::ZAdd { key, score, member } => redis::cmd("ZADD")
            .arg(k(key))
            .arg(score)
            .arg(member)
            .clone(),
        Op::ZRem { key, member } => redis::cmd("ZREM").arg(k(key)).arg(member).clone(),
        Op::ZRange { key, max, limit } => redis::cmd("ZRANGEBYSCORE")
            .arg(k(key))
            .arg("-inf")
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .clone(),
        Op::XAdd { key, n } => redis::cmd("XADD")
            .arg(k(key))
            .arg("MAXLEN")
            .arg(5)
            .arg(format!("{n}-0"))
            .arg("f")
            .arg(n)
            .clone(),
        Op::XDel { key, n } => redis::cmd("XDEL").arg(k(key)).arg(format!("{n}-0")).clone(),
        Op::XLen { key } => redis::cmd("XLEN").arg(k(key)).clone(),
        Op::XGroupCreate { key } => redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(k(key))
            .arg("g")
            .arg("0")
            .arg("MKSTREAM")
            .clone(),
        Op::XReadGroup {
            key,
            consumer,
            pending,
            count,
        } => redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg(format!("c{consumer}"))
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(k(key))
            .arg(if *pending { "0" } else { ">" })
            .clone(),
        Op::XAck { key, n } => redis::cmd("XACK")
            .arg(k(key))
            .arg("g")
            .arg(format!("{n}-0"))
            .clone(),
        Op::XAutoClaim {
            key,
            consumer,
            just_id,
        } => {
            let mut c = redis::cmd("XAUTOCLAIM");
            c.arg(k(key))
                .arg("g")
                .arg(format!("c{consumer}"))
                .arg(0)
                .arg("0-0")
                .arg("COUNT")
                .arg(100);
            if *just_id {
                c.arg("JUSTID");
            }
            c
        }
    }
}

/// Everything each key holds, read with the command of its type (errors included).
fn probes(prefix: &str) -> Vec<redis::Cmd> {
    KEYS.iter()
        .flat_map(|key| {
            let key = format!("{prefix}{key}");
            [
                redis::cmd("GET").arg(&key).clone(),
                redis::cmd("HGETALL").arg(&key).clone(),
                redis::cmd("SMEMBERS").arg(&key).clone(),
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg("+inf")
                    .clone(),
                redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
            ]
        })
        .collect()
}

/// A reply to compare: errors by their code; sets and hashes in a fixed order.
fn comparable(cmd: &redis::Cmd, reply: redis::RedisResult<Value>) -> Result<Value, String> {
    let reply = reply.map_err(|e| e.code().unwrap_or("?").to_string())?;
    let name = cmd.args_iter().next().map(|a| match a {
        redis::Arg::Simple(b) => b.to_vec(),
        redis::Arg::Cursor => Vec::new(),
    });
    Ok(match (name.as_deref(), reply) {
        (Some(b"SMEMBERS" | b"HKEYS"), Value::Array(mut items)) => {
            items.sort_by_key(|v| format!("{v:?}"));
            Value::Array(items)
        }
        (Some(b"HGETALL"), Value::Array(items)) => {
            let mut pairs: Vec<Vec<Value>> = items.chunks(2).map(<[Value]>::to_vec).collect();
            pairs.sort_by_key(|p| format!("{p:?}"));
            Value::Array(pairs.concat())
        }
        (_, Value::SimpleString(s)) if s == "OK" => Value::Okay,
        (_, reply) => reply,
    })
}

struct World {
    runtime: tokio::runtime::Runtime,
    redis: MultiplexedConnection,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = std::env::var("LINKDROP_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:16379".to_string());
        let redis = runtime
            .block_on(async {
                redis::Client::open(url)?
                    .get_multiplexed_async_connection()
                    .await
            })
            .expect("the stack's Redis is up (run ./scripts/stack up)");
        World { runtime, redis }
    })
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("enginetest:{name}:{nanos}:")
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut redis = world().redis.clone();
    let journal =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("journal").replace(':', "_"));
    let mut engine = Engine::open(&journal, JournalOptions::default())
        .await
        .unwrap();
    let prefix = unique("case");
    for op in &ops {
        let cmd = command(op, &prefix);
        let expected = comparable(&cmd, cmd.query_async(&mut redis).await);
        let got = comparable(&cmd, cmd.query_async(&mut engine).await);
        prop_assert_eq!(got, expected, "{:?}", op);
    }
    let mut reopened = Engine::open(&journal, JournalOptions::default())
        .await
        .unwrap();
    for probe in probes(&prefix) {
        let expected = comparable(&probe, probe.query_async(&mut redis).await);
        let before = comparable(&probe, probe.query_async(&mut engine).await);
        let after = comparable(&probe, probe.query_async(&mut reopened).await);
        prop_assert_eq!(&before, &expected, "{:?}", probe.args_iter().count());
        prop_assert_eq!(&after, &expected, "after reopening the journal");
    }
    let _: () = redis::cmd("DEL")
        .arg(KEYS.map(|k| format!("{prefix}{k}")).to_vec())
        .query_async(&mut redis)
        .await
        .unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_engine_answers_as_redis_does_and_its_journal_rebuilds_it(ops in proptest::collection::vec(op(), 1..60)) {
        world().runtime.block_on(run(ops))?;
    }
}

/// The relay's case: an entry delivered, then deleted from the stream before it was
/// acknowledged; a takeover's claim drops it from the group, as Redis 7 does.
#[test]
fn a_claim_drops_pending_entries_that_were_deleted() {
    let ops = vec![
        Op::XGroupCreate { key: 0 },
        Op::XAdd { key: 0, n: 1 },
        Op::XAdd { key: 0, n: 2 },
        Op::XReadGroup {
            key: 0,
            consumer: 0,
            pending: false,
            count: 3,
        },
        Op::XDel { key: 0, n: 1 },
        Op::XAutoClaim {
            key: 0,
            consumer: 1,
            just_id: true,
        },
        Op::XReadGroup {
            key: 0,
            consumer: 1,
            pending: true,
            count: 3,
        },
    ];
    world().runtime.block_on(run(ops)).unwrap();
}

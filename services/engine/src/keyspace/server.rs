//! Commands that touch no key: PING, TIME, CONFIG (answered empty: the engine has no
//! settings to tell), and PUBLISH, whose message leaves once the command's writes are
//! journaled.

use redis::Value;

use super::Ctx;
use super::reply::{Reply, arity, bulk};

pub(super) fn ping() -> Reply {
    Ok(Value::SimpleString("PONG".into()))
}

/// `TIME`: seconds and microseconds, from the command's clock.
pub(super) fn time(now: i64) -> Reply {
    let (s, us) = (now / 1000, (now % 1000) * 1000);
    Ok(Value::Array(vec![
        bulk(s.to_string()),
        bulk(us.to_string()),
    ]))
}

pub(super) fn config() -> Reply {
    Ok(Value::Array(Vec::new()))
}

/// `PUBLISH channel message`; answers 1 whoever listens.
pub(super) fn publish(ctx: &mut Ctx, a: &[Vec<u8>]) -> Reply {
    let [channel, message] = a else {
        return arity("PUBLISH");
    };
    ctx.published.push((channel.clone(), message.clone()));
    Ok(Value::Int(1))
}

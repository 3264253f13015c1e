//! String values: GET, SET (with NX, XX and a time to live) and INCR.

use redis::Value;

use super::args::int;
use super::reply::{CmdError, Reply, arity, bulk};
use super::{Ctx, Data, Keyspace, record};

impl Keyspace {
    pub(super) fn get(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key] = a else { return arity("GET") };
        Ok(self
            .string(key, now)?
            .map_or(Value::Nil, |v| bulk(v.clone())))
    }

    /// `SET key value [NX|XX] [PX ms|EX s]`. A value with a time to live (leases) is not
    /// journaled: it coordinates processes, and the process holding it is gone after a
    /// restart.
    pub(super) fn set_string(&mut self, ctx: &mut Ctx, a: &[Vec<u8>]) -> Reply {
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
                ctx.journal(|| vec![b"SET".to_vec(), key.clone(), value.clone()]);
            }
        }
        Ok(Value::Okay)
    }

    pub(super) fn incr(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let [key] = &args[1..] else {
            return arity("INCR");
        };
        let next = match self.string(key, ctx.now_ms)? {
            None => 1,
            Some(v) => int(v)? + 1,
        };
        self.data
            .insert(key.clone(), Data::Str(next.to_string().into_bytes()));
        record(ctx, args, true);
        Ok(Value::Int(next))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
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
}

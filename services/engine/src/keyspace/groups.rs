//! Consumer groups of a stream: XGROUP, XREADGROUP, XACK and XAUTOCLAIM. A group's
//! deliveries and acknowledgements are not journaled (see [`Keyspace::xreadgroup`]).

use std::collections::BTreeMap;

use redis::Value;

use super::args::int;
use super::reply::{CmdError, Reply, arity, bulk};
use super::streams::{Fields, StreamId, entry};
use super::{Ctx, Keyspace, record};

#[derive(Default)]
pub(super) struct Group {
    pub(super) last_delivered: Option<StreamId>,
    /// Delivered, not acknowledged: to which consumer, when.
    pub(super) pending: BTreeMap<StreamId, (Vec<u8>, i64)>,
}

impl Keyspace {
    /// `XGROUP CREATE key group id [MKSTREAM]` (and `DESTROY`).
    pub(super) fn xgroup(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
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
                ctx.journal(|| {
                    vec![
                        b"XGROUP".to_vec(),
                        b"CREATE".to_vec(),
                        key.clone(),
                        group.clone(),
                        id,
                        b"MKSTREAM".to_vec(),
                    ]
                });
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
                let fresh: Vec<(StreamId, Fields)> = stream
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

    /// `XACK key group id...`: the ids that were pending and are no longer.
    pub(super) fn xack(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
        let [key, group, ids @ ..] = a else {
            return arity("XACK");
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

    /// `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`.
    pub(super) fn xautoclaim(&mut self, a: &[Vec<u8>], now: i64) -> Reply {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{ok, run};
    use super::*;

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
}

//! A journal entry's format: the writes of one command (or script), or a whole snapshot —
//! `count, then per effect: argc, then per argument: length, bytes`, each number a u32
//! little-endian — written effect by effect and read back without copying.

use crate::keyspace::Args;

/// An entry being written.
pub struct Entry {
    bytes: Vec<u8>,
    effects: u32,
}

impl Default for Entry {
    fn default() -> Self {
        Self {
            bytes: vec![0; 4],
            effects: 0,
        }
    }
}

impl Entry {
    /// An entry with room for `bytes` (its size when known: growing a snapshot of hundreds of
    /// megabytes by doubling copies it again and again while every command waits).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut entry = Self::default();
        entry.bytes.reserve(bytes);
        entry
    }

    /// Starts an effect of `argc` arguments; exactly that many [`Entry::arg`] follow.
    pub fn effect(&mut self, argc: usize) {
        self.effects += 1;
        self.number(argc);
    }

    pub fn arg(&mut self, bytes: &[u8]) {
        self.number(bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    fn number(&mut self, n: usize) {
        self.bytes.extend((n as u32).to_le_bytes());
    }

    pub fn is_empty(&self) -> bool {
        self.effects == 0
    }

    /// The entry's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes[..4].copy_from_slice(&self.effects.to_le_bytes());
        self.bytes
    }
}

/// The entry holding `effects`.
pub fn encode(effects: &[Args]) -> Vec<u8> {
    let mut entry = Entry::default();
    for effect in effects {
        entry.effect(effect.len());
        for arg in effect {
            entry.arg(arg);
        }
    }
    entry.finish()
}

/// Reads an entry written by [`encode`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn number(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    /// Whether the rest is exactly whole effects (a walk of the lengths, nothing copied).
    fn whole(mut self) -> Option<()> {
        for _ in 0..self.number()? {
            for _ in 0..self.number()? {
                let len = self.number()?;
                self.take(len)?;
            }
        }
        self.0.is_empty().then_some(())
    }
}

/// Calls `each` with every effect of an entry, in order, held in `args` (whose buffers are
/// reused from one effect to the next). A truncated entry gives None before any effect.
pub fn for_each_effect(blob: &[u8], args: &mut Args, each: impl FnMut(&[Vec<u8>])) -> Option<()> {
    Reader(blob).whole()?;
    // After the count, the effects themselves, whole.
    for_each_effect_in(&[&blob[4..]], args, each);
    Some(())
}

/// The effects of an entry in `parts` groups, each key's effects (a key is an effect's
/// second argument) in one group and in their order, the groups about equally costly to
/// apply (a snapshot writes each key with effects of its own, so the groups can be applied
/// on threads of their own). Each group is a list of byte spans of whole effects. None when
/// the entry is truncated.
pub fn split_by_key(blob: &[u8], parts: usize) -> Option<Vec<Vec<&[u8]>>> {
    Reader(blob).whole()?;
    let mut entry = Reader(blob);
    // Runs of consecutive effects on one key: (key, start, end, cost).
    let mut runs: Vec<(&[u8], usize, usize, usize)> = Vec::new();
    for _ in 0..entry.number()? {
        let start = blob.len() - entry.0.len();
        let argc = entry.number()?;
        let mut key: &[u8] = &[];
        for i in 0..argc {
            let len = entry.number()?;
            let arg = entry.take(len)?;
            if i == 1 {
                key = arg;
            }
        }
        let end = blob.len() - entry.0.len();
        // An argument costs about as much to apply as copying a hundred bytes.
        let cost = 100 * argc + (end - start);
        match runs.last_mut() {
            Some(run) if run.0 == key => {
                run.2 = end;
                run.3 += cost;
            }
            _ => runs.push((key, start, end, cost)),
        }
    }
    // The costliest runs first, each to the group with the least so far.
    runs.sort_by_key(|run| std::cmp::Reverse(run.3));
    let mut groups: Vec<(usize, Vec<&[u8]>)> = vec![(0, Vec::new()); parts.max(1)];
    for (_, start, end, cost) in runs {
        let group = groups.iter_mut().min_by_key(|g| g.0)?;
        group.0 += cost;
        group.1.push(&blob[start..end]);
    }
    Some(groups.into_iter().map(|(_, spans)| spans).collect())
}

/// Calls `each` with every effect in `spans` (byte spans of whole effects, as
/// [`split_by_key`] gives them), in order, held in `args` as [`for_each_effect`] does.
pub fn for_each_effect_in(spans: &[&[u8]], args: &mut Args, mut each: impl FnMut(&[Vec<u8>])) {
    for span in spans {
        let mut effects = Reader(span);
        while !effects.0.is_empty() {
            // Whole effects: the caller walked them.
            let Some(argc) = effects.number() else { return };
            if args.len() < argc {
                args.resize_with(argc, Vec::new);
            }
            for arg in &mut args[..argc] {
                let Some(bytes) = effects.number().and_then(|len| effects.take(len)) else {
                    return;
                };
                arg.clear();
                arg.extend_from_slice(bytes);
            }
            each(&args[..argc]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_survive_encoding_and_a_truncated_entry_is_refused() {
        let effects = vec![
            vec![
                b"HSET".to_vec(),
                b"k".to_vec(),
                b"f".to_vec(),
                "价格\t1".as_bytes().to_vec(),
            ],
            vec![b"DEL".to_vec(), Vec::new()],
        ];
        let blob = encode(&effects);
        let decode = |blob: &[u8]| {
            let mut seen = Vec::new();
            for_each_effect(blob, &mut Args::new(), |e| seen.push(e.to_vec())).map(|()| seen)
        };
        assert_eq!(decode(&blob), Some(effects));
        assert_eq!(decode(&blob[..blob.len() - 1]), None);
    }

    #[test]
    fn split_by_key_keeps_each_keys_effects_together_in_order_and_balances_the_groups() {
        let effect = |name: &str, key: &str, arg: &str| {
            vec![
                name.as_bytes().to_vec(),
                key.as_bytes().to_vec(),
                arg.as_bytes().to_vec(),
            ]
        };
        let effects = vec![
            effect("XADD", "a", &"x".repeat(500)),
            effect("XSETID", "a", "9-0"),
            effect("HSET", "b", &"y".repeat(400)),
            effect("SET", "c", &"z".repeat(300)),
        ];
        let blob = encode(&effects);
        let groups = split_by_key(&blob, 2).unwrap();
        let applied: Vec<Vec<Args>> = groups
            .iter()
            .map(|spans| {
                let mut seen = Vec::new();
                for_each_effect_in(spans, &mut Args::new(), |e| seen.push(e.to_vec()));
                seen
            })
            .collect();
        // a's two effects (the costliest key) alone, in order; b and c together.
        assert_eq!(applied[0], effects[..2]);
        let mut rest = applied[1].clone();
        rest.sort();
        let mut expected = effects[2..].to_vec();
        expected.sort();
        assert_eq!(rest, expected);
        assert_eq!(split_by_key(&blob[..blob.len() - 1], 2), None);
    }
}

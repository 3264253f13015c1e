//! Group commit: the engine's writes reach the journal in groups, not one SQLite commit per
//! command.
//!
//! A command runs under the engine's lock as before, then hands what it wrote (and what it
//! publishes) to the committer with the next sequence number — still under the lock, so the
//! queue is in execution order — and releases the lock. The committer takes everything
//! queued while its previous commit was in flight and journals it in one transaction. Only
//! then does it publish the group's messages (in order) and raise the durable watermark;
//! a command answers once the watermark covers its sequence number. A command that wrote
//! nothing answers once the watermark covers every write made before it ran, so no answer
//! ever rests on a write that is not on disk.
//!
//! When a commit fails, the committer rebuilds the engine's state from the journal under the
//! lock and fails every command queued so far: the writes of the failed group and of any
//! command that ran on top of them are gone, and each of those commands gets an error.
//!
//! While serving, the committer also keeps the journal bounded: once enough bytes were
//! appended since the last compaction, a thread of its own replays the journal so far (the
//! last snapshot and the entries after it) and writes the state it rebuilds as a new
//! snapshot file, while group commits go on; once it is on disk, one small transaction makes
//! it the journal's start ([`crate::snapshot_file`]), and the entries it covers are deleted
//! a few at a time with the commits that follow.

use std::sync::Arc;

use tokio::sync::{Mutex, Notify, broadcast, mpsc, oneshot, watch};

use crate::journal::{Journal, Snapshot};
use crate::keyspace::Args;
use crate::{Core, Message, deliver, now_ms};

/// The most commands journaled in one transaction.
const MAX_GROUP: usize = 1024;

/// A compaction that held commands up this long is logged as a warning.
const STALL_WORTH_A_WARNING_MS: u64 = 100;

/// What one command left for the committer.
pub(crate) struct Pending {
    pub seq: u64,
    pub effects: Vec<Args>,
    pub published: Vec<(Vec<u8>, Vec<u8>)>,
    pub stream_added: bool,
}

/// How far the journal has come: every sequence number up to `committed` is on disk, except
/// those in `failed` (ranges `(after, through]` of commands whose writes were lost);
/// `commits` counts the transactions; `compacting` while a compaction is under way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Durable {
    committed: u64,
    failed: Vec<(u64, u64)>,
    commits: u64,
    compacting: bool,
}

impl Durable {
    fn failed(&self, seq: u64) -> bool {
        self.failed
            .iter()
            .any(|&(after, through)| seq > after && seq <= through)
    }

    /// Whether `seq` is settled: `Some(true)` committed, `Some(false)` lost, `None` not yet.
    fn outcome(&self, seq: u64) -> Option<bool> {
        if self.failed(seq) {
            Some(false)
        } else if seq <= self.committed {
            Some(true)
        } else {
            None
        }
    }
}

/// The engine's side of the committer: where commands queue their writes and wait.
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
    durable: watch::Receiver<Durable>,
}

/// What the committer task owns.
pub(crate) struct Task {
    pub journal: Journal,
    pub core: Arc<Mutex<Core>>,
    pub published: broadcast::Sender<Message>,
    pub stream_added: Arc<Notify>,
    /// Bytes appended since the last compaction that start the next one, at least; the
    /// bound grows to twice the snapshot (compacting costs about as much as the snapshot is
    /// large, so this keeps its cost per byte written constant).
    pub compact_after_bytes: u64,
    /// The bound when the committer starts (twice the snapshot it found, at least).
    pub compact_after: u64,
    /// Bytes in the journal beyond its last snapshot when the committer starts.
    pub since_compaction: u64,
}

impl Committer {
    /// Starts the committer task; it ends when the engine (the queue's sender) is dropped.
    pub fn start(task: Task) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        let (durable_tx, durable) = watch::channel(Durable::default());
        tokio::spawn(task.run(pending, durable_tx));
        Self { queue, durable }
    }

    /// Journal transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.durable.borrow().commits
    }

    /// Waits until no compaction is under way (its snapshot switched to, or given up).
    pub async fn compacted(&self) {
        let mut durable = self.durable.clone();
        let _ = durable.wait_for(|d| !d.compacting).await;
    }

    /// Queues a command's writes; called under the engine's lock, in execution order.
    pub fn queue(&self, pending: Pending) {
        // The task ends only once this sender is dropped.
        let _ = self.queue.send(pending);
    }

    /// Waits until `seq` is committed (true) or lost (false). Sequence 0 is nothing.
    pub async fn settled(&self, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let mut durable = self.durable.clone();
        match durable.wait_for(|d| d.outcome(seq).is_some()).await {
            Ok(d) => d.outcome(seq) == Some(true),
            Err(_) => false,
        }
    }
}

/// A snapshot being made in the background while group commits go on.
struct Writing {
    started: std::time::Instant,
    made: oneshot::Receiver<std::io::Result<Snapshot>>,
}

/// Waits for the snapshot being made, if there is one; never ends otherwise.
async fn made(writing: &mut Option<Writing>) -> std::io::Result<Snapshot> {
    match writing {
        Some(w) => (&mut w.made).await.unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the compaction's thread ended without a snapshot",
            ))
        }),
        None => std::future::pending().await,
    }
}

/// Makes the calling thread the machine's least urgent (Linux's `SCHED_BATCH` at niceness
/// 19: about 1.5 % of a core while every core is busy serving, all of an idle one): a
/// compaction gives way to serving, and is never starved for good (`SCHED_IDLE` would be:
/// a rush that keeps the cores busy would hold it off for as long as it lasts).
pub(crate) fn yield_to_serving() -> Result<(), String> {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    )
    .map_err(|e| format!("{e:?}"))
}

impl Task {
    async fn run(
        self,
        mut pending: mpsc::UnboundedReceiver<Pending>,
        durable: watch::Sender<Durable>,
    ) {
        let mut since_compaction = self.since_compaction;
        let mut compact_after = self.compact_after;
        let mut writing = None;
        loop {
            let first = tokio::select! {
                biased;
                outcome = made(&mut writing) => {
                    let started = writing.take().expect("a snapshot was being made").started;
                    if let Some(bytes) = self.switch(started, outcome).await {
                        compact_after = self.compact_after_bytes.max(2 * bytes);
                    }
                    durable.send_modify(|d| d.compacting = false);
                    continue;
                }
                first = pending.recv() => match first {
                    Some(first) => first,
                    // The engine is gone; a snapshot still being made is left unnamed, for
                    // the next start to remove.
                    None => return,
                },
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match pending.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let compacts = |bytes| writing.is_none() && since_compaction + bytes >= compact_after;
            let Some(written) = self.commit(group, &mut pending, &durable, compacts).await else {
                continue;
            };
            since_compaction += written;
            if writing.is_none() && since_compaction >= compact_after {
                writing = self.start_compaction().await;
                if writing.is_none() {
                    durable.send_modify(|d| d.compacting = false);
                }
                since_compaction = 0;
            }
        }
    }

    /// Journals `group` in one transaction, then publishes and raises the watermark; on a
    /// failure, rebuilds the state and fails everything queued. The bytes journaled, or
    /// None when the commit failed. `starts_compaction` (given the bytes) says whether a
    /// compaction follows: the watermark says so as it rises, so that no command answered by
    /// this commit can see the journal idle before that compaction.
    async fn commit(
        &self,
        group: Vec<Pending>,
        pending: &mut mpsc::UnboundedReceiver<Pending>,
        durable: &watch::Sender<Durable>,
        starts_compaction: impl FnOnce(u64) -> bool,
    ) -> Option<u64> {
        let last = group.last().map_or(0, |p| p.seq);
        let entries: Vec<&[Args]> = group
            .iter()
            .filter(|p| !p.effects.is_empty())
            .map(|p| p.effects.as_slice())
            .collect();
        let bytes = match self.journal.append_group(&entries).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, commands = group.len(), "the engine journal refused a group of writes; rebuilding from it");
                self.rebuild(pending, durable).await;
                return None;
            }
        };
        for p in group {
            deliver(
                &self.published,
                &self.stream_added,
                p.published,
                p.stream_added,
            );
        }
        let compacting = starts_compaction(bytes);
        durable.send_modify(|d| {
            d.committed = last;
            d.commits += 1;
            d.compacting |= compacting;
        });
        Some(bytes)
    }

    /// The state again from the journal, under the lock; every command queued so far (the
    /// failed group's and those that ran on top of it) is lost.
    async fn rebuild(
        &self,
        pending: &mut mpsc::UnboundedReceiver<Pending>,
        durable: &watch::Sender<Durable>,
    ) {
        let mut core = self.core.lock().await;
        match self.journal.replay(now_ms()).await {
            Ok((keyspace, _)) => core.keyspace = keyspace,
            Err(e) => tracing::error!(error = %e, "the engine journal cannot be read back"),
        }
        while pending.try_recv().is_ok() {}
        let through = core.last_seq;
        // The rebuilt state is the journal's: a command that reads it waits for nothing,
        // so it gets a sequence number of its own that counts as committed.
        core.last_seq += 1;
        let rebuilt = core.last_seq;
        durable.send_modify(|d| {
            let after = d.committed;
            d.failed.push((after, through));
            d.committed = rebuilt;
        });
    }

    /// Starts replacing the journal's entries so far with a snapshot of the state they
    /// rebuild, made in the background from the journal itself (the last snapshot and the
    /// entries after it, replayed on a thread of its own while group commits go on): no
    /// command waits for it, and the engine keeps no second copy of its state between
    /// compactions. None when the journal could not say where it stands.
    async fn start_compaction(&self) -> Option<Writing> {
        let started = std::time::Instant::now();
        let through = match self.journal.last_entry().await {
            Ok(through) => through,
            Err(e) => {
                tracing::error!(error = %e, "the engine could not compact its journal");
                return None;
            }
        };
        let reader = self.journal.reader().clone();
        let files = self.journal.snapshot_files().clone();
        let runtime = tokio::runtime::Handle::current();
        let (done, made) = oneshot::channel();
        let make = move || {
            if let Err(e) = yield_to_serving() {
                tracing::warn!(error = %e, "the engine's compaction runs at the priority of serving");
            }
            let now = now_ms();
            let (mut keyspace, _) = runtime
                // One thread: the cores are serving meanwhile.
                .block_on(reader.replay(now, Some(through), 1))
                .map_err(std::io::Error::other)?;
            let bytes = keyspace.snapshot(now).finish();
            drop(keyspace);
            let file = files.name(through);
            files.write(&file, &bytes)?;
            Ok(Snapshot {
                file,
                through,
                bytes: bytes.len() as u64,
            })
        };
        // A thread of its own (not the runtime's blocking pool, whose threads are reused):
        // it gives way to serving.
        let spawned = std::thread::Builder::new()
            .name("engine-compaction".into())
            .spawn(move || {
                let _ = done.send(make());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the engine could not start a compaction");
            return None;
        }
        Some(Writing { started, made })
    }

    /// Makes the snapshot made the journal's start. Its size in bytes, or None when it could
    /// not be made or switched to (the journal then keeps every entry: nothing is lost, it
    /// is only longer).
    async fn switch(
        &self,
        started: std::time::Instant,
        made: std::io::Result<Snapshot>,
    ) -> Option<u64> {
        let switching = std::time::Instant::now();
        let switched = match made {
            Ok(snapshot) => self
                .journal
                .switch_to(&snapshot)
                .await
                .map(|()| snapshot.bytes)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let bytes = match switched {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "the engine could not compact its journal");
                return None;
            }
        };
        // Commands wait only for the switch's small transaction.
        let switch_ms = switching.elapsed().as_millis() as u64;
        let made_ms = switching.duration_since(started).as_millis() as u64;
        if switch_ms >= STALL_WORTH_A_WARNING_MS {
            tracing::warn!(
                bytes,
                made_ms,
                switch_ms,
                "the engine compacted its journal while serving; commands waited for the switch"
            );
        } else {
            tracing::info!(
                bytes,
                made_ms,
                switch_ms,
                "the engine compacted its journal while serving"
            );
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_compaction_thread_is_the_least_urgent_of_the_machine() {
        let (policy, nice) = std::thread::spawn(|| {
            super::yield_to_serving().unwrap();
            // Fields 19 and 41 of /proc/thread-self/stat: niceness and scheduling policy
            // (3: SCHED_BATCH); the command name in field 2 may hold spaces, so count after
            // its ')'.
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let fields: Vec<String> = stat[stat.rfind(')').unwrap() + 2..]
                .split(' ')
                .map(str::to_string)
                .collect();
            (fields[41 - 3].clone(), fields[19 - 3].clone())
        })
        .join()
        .unwrap();
        assert_eq!((policy.as_str(), nice.as_str()), ("3", "19"));
    }
}

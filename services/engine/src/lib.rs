//! The embedded backend's live state (issue 9): what Redis holds on the stack — stock,
//! per-user counts, idempotency records, drop phases, outboxes, room histories — held in
//! this process instead.
//!
//! [`Engine`] answers the Redis commands linkdrop sends and runs linkdrop's own Lua scripts
//! (admission, pay, expire, draw, launch, close, publish, lease) in an embedded Lua 5.1,
//! so the admission rules are the very scripts production runs, not a second copy of them.
//! It is a `redis::aio::ConnectionLike`, so every role talks to it through the same code it
//! uses for Redis. Every write is journaled to SQLite before its answer is returned
//! ([`journal`]), the writes of commands that arrive together in one commit ([`commit`]);
//! opening the engine replays the journal (a snapshot file, then the entries after it), and
//! the journal is compacted while serving ([`snapshot_file`]). Publishing reaches this process's
//! subscribers ([`Engine::subscribe`]): the gateway of `linkdrop all`.
//!
//! Commands run one at a time under one lock, as in Redis; a script runs whole.

pub mod commit;
pub mod entry;
pub mod journal;
pub mod keyspace;
pub mod lua;
pub mod snapshot_file;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{Mutex, Notify, broadcast};

use crate::commit::{Committer, Pending, Task};
pub use crate::journal::DataSync;
use crate::journal::Journal;
use crate::keyspace::{Args, CmdError, Ctx, Keyspace, Reply};
use crate::lua::Scripts;

/// Messages a slow subscriber may fall behind before it misses some (and is told so).
const SUBSCRIBER_BACKLOG: usize = 16_384;

/// The crash tests' failpoints, when the process has them ([`set_failpoint`]).
static FAILPOINT: OnceLock<fn(&str)> = OnceLock::new();

/// Lets the process die at the engine's named moments, as its own failpoints do
/// (`engine.snapshot_written`: a snapshot file is whole on disk, the journal does not name it
/// yet; `engine.snapshot_switched`: the journal names it, the previous file is still there).
pub fn set_failpoint(hook: fn(&str)) {
    let _ = FAILPOINT.set(hook);
}

pub(crate) fn failpoint(name: &str) {
    if let Some(hook) = FAILPOINT.get() {
        hook(name);
    }
}

/// A message published on a channel.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub payload: String,
}

/// How the engine journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    pub sync: DataSync,
    /// Bytes appended since the last compaction that start the next one, at least (the
    /// bound grows to twice the snapshot's size, so that compacting costs the same per
    /// byte written however large the state).
    pub compact_after_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            sync: DataSync::Normal,
            compact_after_bytes: 64 << 20,
        }
    }
}

/// The engine; clones share it.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

struct Shared {
    core: Arc<Mutex<Core>>,
    /// Commands run so far (a script is one), for tests and benchmarks.
    commands_run: AtomicU64,
    /// Journals the writes; none for an engine in memory.
    committer: Option<Committer>,
    published: broadcast::Sender<Message>,
    stream_added: Arc<Notify>,
}

pub(crate) struct Core {
    keyspace: Keyspace,
    scripts: Scripts,
    /// The sequence number of the last command that wrote or published (0: none yet).
    last_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the engine journal (SQLite): {0}")]
    Journal(#[from] sqlx::Error),
}

impl Engine {
    /// The engine journaled at `path`, with every write the journal holds replayed. The
    /// journal is compacted now only when it holds more entries after its snapshot than
    /// serving would have let it grow (a journal left by a crash in the middle of a
    /// compaction, or by an older linkdrop, which kept no snapshot file); otherwise the
    /// committer goes on counting from there.
    pub async fn open(path: &Path, options: JournalOptions) -> Result<Self, OpenError> {
        let sync = options.sync;
        let journal = Journal::open(path, sync).await?;
        let (mut keyspace, replayed) = journal.replay(now_ms()).await?;
        let entries = replayed.entries;
        let mut since_compaction = replayed.bytes;
        let mut compact_after = options.compact_after_bytes.max(2 * replayed.snapshot_bytes);
        if since_compaction > compact_after {
            let started = std::time::Instant::now();
            let snapshot_bytes = journal.compact(&mut keyspace, now_ms()).await?;
            since_compaction = 0;
            compact_after = options.compact_after_bytes.max(2 * snapshot_bytes);
            tracing::info!(
                entries,
                bytes = replayed.bytes,
                ms = started.elapsed().as_millis() as u64,
                "embedded engine compacted its journal at start"
            );
        }
        tracing::info!(
            path = %path.display(),
            snapshot_bytes = replayed.snapshot_bytes,
            entries,
            bytes = replayed.bytes,
            read_ms = replayed.read_ms,
            applied_ms = replayed.applied_ms,
            sync = sync.as_str(),
            "embedded engine replayed its journal"
        );
        let core = Arc::new(Mutex::new(Core::new(keyspace)));
        let published = broadcast::channel(SUBSCRIBER_BACKLOG).0;
        let stream_added = Arc::new(Notify::new());
        let committer = Committer::start(Task {
            journal,
            core: core.clone(),
            published: published.clone(),
            stream_added: stream_added.clone(),
            compact_after_bytes: options.compact_after_bytes,
            compact_after,
            since_compaction,
        });
        Ok(Self::with(core, Some(committer), published, stream_added))
    }

    /// An engine without a journal: its state ends with the process (tests).
    pub fn in_memory() -> Self {
        Self::with(
            Arc::new(Mutex::new(Core::new(Keyspace::default()))),
            None,
            broadcast::channel(SUBSCRIBER_BACKLOG).0,
            Arc::new(Notify::new()),
        )
    }

    fn with(
        core: Arc<Mutex<Core>>,
        committer: Option<Committer>,
        published: broadcast::Sender<Message>,
        stream_added: Arc<Notify>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                core,
                commands_run: AtomicU64::new(0),
                committer,
                published,
                stream_added,
            }),
        }
    }

    /// Every message published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.shared.published.subscribe()
    }

    /// How many commands were run (a script is one command, as in Redis's `calls`).
    pub fn commands_run(&self) -> u64 {
        self.shared.commands_run.load(Ordering::Relaxed)
    }

    /// How many journal transactions were committed since the engine opened (each holds
    /// the writes of one or more commands); 0 in memory.
    pub fn journal_commits(&self) -> u64 {
        self.shared.committer.as_ref().map_or(0, Committer::commits)
    }

    /// Waits until no compaction of the journal is under way.
    pub async fn compacted(&self) {
        if let Some(committer) = &self.shared.committer {
            committer.compacted().await;
        }
    }

    /// Runs one command; waits when it is a blocking read with nothing to read yet.
    pub async fn command(&self, args: Args) -> RedisResult<Value> {
        self.shared.commands_run.fetch_add(1, Ordering::Relaxed);
        let mut deadline = None;
        loop {
            let mut core = self.shared.core.lock().await;
            let mut ctx = Ctx {
                now_ms: now_ms(),
                ..Ctx::default()
            };
            let (reply, block_ms) = core.dispatch(&mut ctx, &args);
            if let (Some(ms), Ok(Value::Nil)) = (block_ms, &reply) {
                let deadline = *deadline.get_or_insert_with(|| {
                    (ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(ms as u64))
                });
                if deadline.is_none_or(|d| tokio::time::Instant::now() < d) {
                    let added = self.shared.stream_added.notified();
                    tokio::pin!(added);
                    added.as_mut().enable();
                    drop(core);
                    match deadline {
                        Some(d) => {
                            let _ = tokio::time::timeout_at(d, added).await;
                        }
                        None => added.await,
                    }
                    continue;
                }
            }
            self.finish(core, ctx).await?;
            return reply.map_err(to_redis_error);
        }
    }

    /// Several commands; all under one lock when `atomic` (MULTI/EXEC).
    pub async fn commands(&self, commands: Vec<Args>, atomic: bool) -> RedisResult<Vec<Value>> {
        if atomic {
            self.shared
                .commands_run
                .fetch_add(commands.len() as u64, Ordering::Relaxed);
        }
        if !atomic {
            let mut replies = Vec::with_capacity(commands.len());
            for args in commands {
                replies.push(self.command(args).await?);
            }
            return Ok(replies);
        }
        let mut core = self.shared.core.lock().await;
        let mut ctx = Ctx {
            now_ms: now_ms(),
            ..Ctx::default()
        };
        let replies: Vec<Reply> = commands
            .iter()
            .map(|args| core.dispatch(&mut ctx, args).0)
            .collect();
        self.finish(core, ctx).await?;
        replies
            .into_iter()
            .map(|r| r.map_err(to_redis_error))
            .collect()
    }

    /// Hands what the command wrote and publishes to the committer (still holding the lock,
    /// so the journal's order is the execution order) and waits until it is journaled —
    /// or, for a command that wrote nothing, until every write it could have read is. An
    /// engine in memory publishes at once.
    async fn finish(
        &self,
        mut core: tokio::sync::MutexGuard<'_, Core>,
        ctx: Ctx,
    ) -> RedisResult<()> {
        let Some(committer) = &self.shared.committer else {
            drop(core);
            self.publish(ctx.published, ctx.stream_added);
            return Ok(());
        };
        if !ctx.effects.is_empty() || !ctx.published.is_empty() || ctx.stream_added {
            core.last_seq += 1;
            committer.queue(Pending {
                seq: core.last_seq,
                effects: ctx.effects,
                published: ctx.published,
                stream_added: ctx.stream_added,
            });
        }
        let seq = core.last_seq;
        drop(core);
        if committer.settled(seq).await {
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::IoError,
                "the embedded engine could not journal a write",
            )))
        }
    }

    fn publish(&self, published: Vec<(Vec<u8>, Vec<u8>)>, stream_added: bool) {
        deliver(
            &self.shared.published,
            &self.shared.stream_added,
            published,
            stream_added,
        );
    }
}

/// Sends a command's messages to the subscribers and wakes blocked stream readers.
pub(crate) fn deliver(
    subscribers: &broadcast::Sender<Message>,
    stream_readers: &Notify,
    published: Vec<(Vec<u8>, Vec<u8>)>,
    stream_added: bool,
) {
    for (channel, payload) in published {
        let _ = subscribers.send(Message {
            channel: String::from_utf8_lossy(&channel).into_owned(),
            payload: String::from_utf8_lossy(&payload).into_owned(),
        });
    }
    if stream_added {
        stream_readers.notify_waiters();
    }
}

impl Core {
    fn new(keyspace: Keyspace) -> Self {
        Self {
            keyspace,
            scripts: Scripts::new(),
            last_seq: 0,
        }
    }

    /// One command: scripts here, the rest in the keyspace. The second value is the wait
    /// of a blocking read that found nothing.
    fn dispatch(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> (Reply, Option<i64>) {
        let name = args
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match name.as_slice() {
            b"EVALSHA" | b"EVAL" => self.eval(ctx, args),
            b"SCRIPT" => match args.get(1..) {
                Some([sub, source]) if sub.eq_ignore_ascii_case(b"LOAD") => self
                    .scripts
                    .load(source)
                    .map(|sha| Value::BulkString(sha.into_bytes())),
                _ => Err(CmdError::new("ERR", "only SCRIPT LOAD is supported")),
            },
            b"XREADGROUP" => {
                return match self.keyspace.xreadgroup(&args[1..], ctx.now_ms) {
                    Ok((reply, block)) => (Ok(reply), block),
                    Err(e) => (Err(e), None),
                };
            }
            _ => self.keyspace.execute(ctx, args),
        };
        (reply, None)
    }

    /// `EVALSHA sha numkeys key... arg...` (or `EVAL source ...`).
    fn eval(&mut self, ctx: &mut Ctx, args: &[Vec<u8>]) -> Reply {
        let [name, script, numkeys, rest @ ..] = args else {
            return Err(CmdError::new(
                "ERR",
                "wrong number of arguments for 'evalsha'",
            ));
        };
        let sha = if name.eq_ignore_ascii_case(b"EVAL") {
            self.scripts.load(script)?
        } else {
            String::from_utf8_lossy(script).into_owned()
        };
        let numkeys = std::str::from_utf8(numkeys)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= rest.len())
            .ok_or_else(|| {
                CmdError::new("ERR", "Number of keys can't be greater than number of args")
            })?;
        let (keys, argv) = rest.split_at(numkeys);
        self.scripts.run(&sha, keys, argv, &mut self.keyspace, ctx)
    }
}

fn to_redis_error(e: CmdError) -> RedisError {
    match e.code {
        "NOSCRIPT" => RedisError::from((ErrorKind::NoScriptError, "NOSCRIPT", e.message)),
        "ERR" => RedisError::from((ErrorKind::ResponseError, "ERR", e.message)),
        code => redis::make_extension_error(code.to_string(), Some(e.message)),
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn args_of(cmd: &Cmd) -> Args {
    cmd.args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => bytes.to_vec(),
            redis::Arg::Cursor => b"0".to_vec(),
        })
        .collect()
}

impl redis::aio::ConnectionLike for Engine {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let args = args_of(cmd);
        Box::pin(async move { self.command(args).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let commands: Vec<Args> = pipeline.cmd_iter().map(args_of).collect();
        let atomic = pipeline.is_transaction();
        Box::pin(async move {
            let replies = self.commands(commands, atomic).await?;
            let replies = if atomic {
                // As Redis answers MULTI, each QUEUED, then EXEC with every reply.
                let mut all = vec![Value::Okay];
                all.extend(replies.iter().map(|_| Value::SimpleString("QUEUED".into())));
                all.push(Value::Array(replies));
                all
            } else {
                replies
            };
            Ok(replies.into_iter().skip(offset).take(count).collect())
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

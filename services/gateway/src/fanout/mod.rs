//! Fan-out: who is in which room on this node, and handing one frame to all of them.
//!
//! A room's members are spread over shards, each behind its own lock, so joins and leaves
//! contend only within a shard. A broadcast takes a WebSocket frame that was encoded once
//! (shared bytes) and offers it to every member without waiting: written to the member's
//! socket straight from the broadcast's loop when the socket takes it, queued for the
//! member's own task otherwise ([`Mailbox`]). A member whose queue is full is a slow
//! consumer and is told to close (4008) rather than allowed to hold memory or delay the
//! room.
//!
//! Each room has a gate holding the `seq` of the last event this node delivered. A
//! broadcast holds it exclusively, joins hold it shared: so a joining member either gets
//! an event or is told (through the `seq` of its `hello`) that it came before, never
//! neither. Events at or below the gate are duplicates and are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::wire::Frame;

mod mailbox;
#[cfg(test)]
pub use mailbox::Next;
pub use mailbox::{Flushed, MAX_QUEUED_BYTES, Mailbox, Member, Offer};

/// Shards per room: enough to keep joins of a large room from queueing on one lock.
const SHARDS: usize = 16;
/// Recent events kept per room on this node, for viewers that reconnect quickly.
pub const RING: usize = 512;
/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The connection's queue overflowed (4008).
    SlowConsumer,
    /// The node is shutting down; the client should reconnect elsewhere (1012).
    Restart,
}

impl CloseReason {
    pub fn code(&self) -> u16 {
        match self {
            Self::SlowConsumer => 4008,
            Self::Restart => 1012,
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow consumer",
            Self::Restart => "server restarting, reconnect",
        }
    }
}

/// What a joining viewer missed, given the `seq` it last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catchup {
    /// Nothing: it saw everything up to the room's latest event (or asked for nothing).
    UpToDate,
    /// These frames, in order, from this node's recent events.
    Frames(Vec<Frame>),
    /// Events `after + 1 ..= until` are older than this node keeps: read the room history.
    FromHistory { after: u64, until: u64 },
}

/// A member's place in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub id: u64,
    /// `seq` of the last event delivered before it joined; it receives every later one.
    pub seq: u64,
    pub catchup: Catchup,
}

/// The room's delivery state on this node, changed only under its lock.
#[derive(Default)]
struct Gate {
    /// `seq` of the last event delivered here; `None` until learned from Redis.
    last: Option<u64>,
    /// The latest events delivered here, oldest first.
    recent: VecDeque<(u64, Frame)>,
}

/// The members of one room on this node.
pub struct RoomMembers {
    gate: RwLock<Gate>,
    shards: Vec<Mutex<HashMap<u64, Member>>>,
    count: AtomicU64,
    /// The room's viewer count across all nodes, as last learned.
    pub viewers_total: AtomicU64,
    /// The last count sent to this node's viewers in `room.viewers`, and when.
    viewers_sent: Mutex<Option<(u64, Instant)>>,
    /// The last `resync` frame built here: for which `seq`, when, and the frame (`None`:
    /// the room had no open drop).
    snapshot: Mutex<Option<(u64, Instant, Option<String>)>>,
}

impl RoomMembers {
    fn new() -> Self {
        Self {
            gate: RwLock::new(Gate::default()),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicU64::new(0),
            viewers_total: AtomicU64::new(0),
            viewers_sent: Mutex::new(None),
            snapshot: Mutex::new(None),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Member>> {
        &self.shards[(id as usize) % SHARDS]
    }

    /// True once the room's `seq` is known on this node.
    pub fn knows_seq(&self) -> bool {
        self.gate.read().expect("gate lock").last.is_some()
    }

    /// The `seq` of the last event delivered here.
    pub fn last_seq(&self) -> Option<u64> {
        self.gate.read().expect("gate lock").last
    }

    /// Sets the room's `seq` as read from Redis, unless events already moved it further.
    pub fn learn_seq(&self, seq: u64) {
        let mut gate = self.gate.write().expect("gate lock");
        gate.last = Some(gate.last.map_or(seq, |g| g.max(seq)));
    }

    /// The snapshot built for `seq` less than `ttl` ago, if any.
    pub fn cached_snapshot(&self, seq: u64, ttl: Duration) -> Option<Option<String>> {
        let snapshot = self.snapshot.lock().expect("snapshot lock");
        match &*snapshot {
            Some((at_seq, built, frame)) if *at_seq == seq && built.elapsed() < ttl => {
                Some(frame.clone())
            }
            _ => None,
        }
    }

    pub fn cache_snapshot(&self, seq: u64, frame: Option<String>) {
        *self.snapshot.lock().expect("snapshot lock") = Some((seq, Instant::now(), frame));
    }

    /// Whether `total` should go out in `room.viewers` now: it differs from the count sent
    /// last, and that was at least `pace` ago. Answering yes counts it as sent.
    pub fn viewers_due(&self, total: u64, pace: Duration) -> bool {
        let mut sent = self.viewers_sent.lock().expect("viewers lock");
        let due = match *sent {
            None => true,
            Some((count, at)) => count != total && at.elapsed() >= pace,
        };
        if due {
            *sent = Some((total, Instant::now()));
        }
        due
    }

    /// Members on this node.
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every room with members on this node, and every shopper's connections here (for
/// `order.result`, which goes to one shopper only).
#[derive(Default)]
pub struct FanOut {
    rooms: RwLock<HashMap<String, Arc<RoomMembers>>>,
    users: Mutex<HashMap<String, HashMap<u64, Member>>>,
    next_id: AtomicU64,
    /// Threads a big room's broadcast is walked on at most (0 or 1: the caller's only).
    walkers: usize,
}

/// Delivery figures of one broadcast.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Written to the member's socket by the broadcast itself.
    pub written: usize,
    /// Queued for the member's own task.
    pub queued: usize,
    pub slow: usize,
}

impl Delivery {
    /// Members that got the frame (written, or queued for them).
    pub fn reached(&self) -> usize {
        self.written + self.queued
    }

    fn add(self, other: Delivery) -> Delivery {
        Delivery {
            written: self.written + other.written,
            queued: self.queued + other.queued,
            slow: self.slow + other.slow,
        }
    }
}

/// Members a broadcast walks per thread: a room with more than this on the node is walked
/// on several threads at once (up to [`FanOut::walked_by`]'s count), each taking every
/// n-th shard, so that the writes to a big room's sockets use the node's cores.
const MEMBERS_PER_WALKER: u64 = 4096;

/// Offers `frame` to the members of `shards`, removing those that are slow or gone; how
/// it went, and how many were removed.
fn walk<'a>(
    shards: impl Iterator<Item = &'a Mutex<HashMap<u64, Member>>>,
    frame: &Frame,
) -> (Delivery, u64) {
    let mut delivery = Delivery::default();
    let mut removed = 0u64;
    for shard in shards {
        let mut members = shard.lock().expect("shard lock");
        members.retain(|_, member| match member.offer(frame) {
            Offer::Written => {
                delivery.written += 1;
                true
            }
            Offer::Queued => {
                delivery.queued += 1;
                true
            }
            Offer::Slow => {
                delivery.slow += 1;
                removed += 1;
                false
            }
            // The connection is already gone; its own `leave` will find it removed.
            Offer::Gone => {
                removed += 1;
                false
            }
        });
    }
    (delivery, removed)
}

/// [`walk`] on `threads` threads at once, each taking every `threads`-th shard. Blocks the
/// calling thread until all are done (the runtime moves its other tasks elsewhere).
fn walk_on(
    threads: usize,
    shards: &[Mutex<HashMap<u64, Member>>],
    frame: &Frame,
) -> (Delivery, u64) {
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let walkers: Vec<_> = (1..threads)
                .map(|first| {
                    scope.spawn(move || walk(shards.iter().skip(first).step_by(threads), frame))
                })
                .collect();
            let own = walk(shards.iter().step_by(threads), frame);
            walkers
                .into_iter()
                .fold(own, |(delivery, removed), walker| {
                    let (d, r) = walker.join().expect("a walker thread");
                    (delivery.add(d), removed + r)
                })
        })
    })
}

impl FanOut {
    /// A fan-out that walks a big room's broadcast on up to `threads` threads at once
    /// (needs tokio's multi-thread runtime when more than one).
    pub fn walked_by(threads: usize) -> FanOut {
        FanOut {
            walkers: threads.min(SHARDS),
            ..FanOut::default()
        }
    }

    /// Adds a member to a room (see [`FanOut::room_or_insert`]). It receives every event
    /// after [`Joined::seq`]; a member that last saw `since` also learns what it missed
    /// up to there.
    pub fn join(&self, room: &RoomMembers, member: Member, since: Option<u64>) -> Joined {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let gate = room.gate.read().expect("gate lock");
        room.shard(id)
            .lock()
            .expect("shard lock")
            .insert(id, member);
        room.count.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("linkdrop_gateway_connections").increment(1.0);
        let seq = gate.last.unwrap_or(0);
        let catchup = match since {
            Some(since) if since < seq => {
                let covered = gate
                    .recent
                    .front()
                    .is_some_and(|(first, _)| *first <= since + 1);
                if covered {
                    let frames = gate
                        .recent
                        .iter()
                        .filter(|(s, _)| *s > since)
                        .map(|(_, f)| f.clone())
                        .collect();
                    Catchup::Frames(frames)
                } else {
                    Catchup::FromHistory {
                        after: since,
                        until: seq,
                    }
                }
            }
            _ => Catchup::UpToDate,
        };
        Joined { id, seq, catchup }
    }

    /// The room's members on this node, registering the room if it is new here (call
    /// [`RoomMembers::learn_seq`] before the first join).
    pub fn room_or_insert(&self, room_id: &str) -> Arc<RoomMembers> {
        if let Some(room) = self.rooms.read().expect("rooms lock").get(room_id) {
            return room.clone();
        }
        self.rooms
            .write()
            .expect("rooms lock")
            .entry(room_id.to_string())
            .or_insert_with(|| Arc::new(RoomMembers::new()))
            .clone()
    }

    /// Removes a member. An empty room stays registered; [`FanOut::prune`] drops it.
    pub fn leave(&self, room: &RoomMembers, id: u64) {
        if room
            .shard(id)
            .lock()
            .expect("shard lock")
            .remove(&id)
            .is_some()
        {
            room.count.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("linkdrop_gateway_connections").decrement(1.0);
        }
    }

    /// The room's members on this node, if any joined.
    pub fn room(&self, room_id: &str) -> Option<Arc<RoomMembers>> {
        self.rooms.read().expect("rooms lock").get(room_id).cloned()
    }

    /// Rooms with members here, with their local counts.
    pub fn rooms(&self) -> Vec<(String, Arc<RoomMembers>)> {
        self.rooms
            .read()
            .expect("rooms lock")
            .iter()
            .map(|(id, room)| (id.clone(), room.clone()))
            .collect()
    }

    /// Forgets rooms left empty that nobody is about to join (no session or joiner holds
    /// them).
    pub fn prune(&self) {
        self.rooms
            .write()
            .expect("rooms lock")
            .retain(|_, room| Arc::strong_count(room) > 1 || !room.is_empty());
    }

    /// Offers `frame` (the room event numbered `seq`, or an unnumbered frame) to every
    /// member of `room_id` on this node. Never waits: a full queue closes that member as a
    /// slow consumer. An event at or below the room's gate was delivered before: dropped.
    pub fn broadcast(&self, room_id: &str, seq: Option<u64>, frame: &Frame) -> Delivery {
        let Some(room) = self.room(room_id) else {
            return Delivery::default();
        };
        let mut gate = room.gate.write().expect("gate lock");
        if let (Some(seq), Some(last)) = (seq, gate.last)
            && seq <= last
        {
            return Delivery::default();
        }
        if let Some(seq) = seq {
            gate.last = Some(seq);
            if gate.recent.len() == RING {
                gate.recent.pop_front();
            }
            gate.recent.push_back((seq, frame.clone()));
        }
        let threads = (room.len().div_ceil(MEMBERS_PER_WALKER) as usize).min(self.walkers);
        let (delivery, removed) = if threads > 1 {
            walk_on(threads, &room.shards, frame)
        } else {
            walk(room.shards.iter(), frame)
        };
        if removed > 0 {
            room.count.fetch_sub(removed, Ordering::Relaxed);
            metrics::gauge!("linkdrop_gateway_connections").decrement(removed as f64);
        }
        metrics::counter!("linkdrop_gateway_frames_written_total")
            .increment(delivery.written as u64);
        metrics::counter!("linkdrop_gateway_frames_queued_total").increment(delivery.queued as u64);
        metrics::counter!("linkdrop_gateway_slow_consumers_total").increment(delivery.slow as u64);
        delivery
    }

    /// Registers member `id` as a connection of `user_id`.
    pub fn join_user(&self, user_id: &str, id: u64, member: Member) {
        self.users
            .lock()
            .expect("users lock")
            .entry(user_id.to_string())
            .or_default()
            .insert(id, member);
    }

    pub fn leave_user(&self, user_id: &str, id: u64) {
        let mut users = self.users.lock().expect("users lock");
        if let Some(connections) = users.get_mut(user_id) {
            connections.remove(&id);
            if connections.is_empty() {
                users.remove(user_id);
            }
        }
    }

    /// Offers `frame` to every connection of `user_id` on this node; how many took it.
    pub fn send_to_user(&self, user_id: &str, frame: &Frame) -> usize {
        let users = self.users.lock().expect("users lock");
        let Some(connections) = users.get(user_id) else {
            return 0;
        };
        connections
            .values()
            .filter(|member| matches!(member.offer(frame), Offer::Written | Offer::Queued))
            .count()
    }

    /// Tells every connection on this node to close with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        for (_, room) in self.rooms() {
            for shard in &room.shards {
                for member in shard.lock().expect("shard lock").values() {
                    member.fire(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

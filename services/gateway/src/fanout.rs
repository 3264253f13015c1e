//! Fan-out: who is in which room on this node, and handing one frame to all of them.
//!
//! A room's members are spread over shards, each behind its own lock, so joins and leaves
//! contend only within a shard. A broadcast takes a frame that was serialized once (shared
//! bytes) and offers it to every member's bounded queue without waiting; a member whose
//! queue is full is a slow consumer and is told to close (4008) rather than allowed to
//! hold memory or delay the room.
//!
//! Each room has a gate holding the `seq` of the last event this node delivered. A
//! broadcast holds it exclusively, joins hold it shared: so a joining member either gets
//! an event or is told (through the `seq` of its `hello`) that it came before, never
//! neither. Events at or below the gate are duplicates and are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Shards per room: enough to keep joins of a large room from queueing on one lock.
const SHARDS: usize = 16;

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

/// Tells one connection to close, with a reason; the first reason wins.
#[derive(Debug, Default)]
pub struct Kill {
    token: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl Kill {
    pub fn fire(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub async fn fired(&self) -> CloseReason {
        self.token.cancelled().await;
        *self.reason.get().expect("a fired kill has a reason")
    }
}

/// This node's handle on one connection: its queue and its kill switch.
#[derive(Clone)]
pub struct Member {
    pub queue: mpsc::Sender<Utf8Bytes>,
    pub kill: Arc<Kill>,
}

/// The members of one room on this node.
pub struct RoomMembers {
    /// `seq` of the last event delivered here; `None` until learned from Redis.
    gate: RwLock<Option<u64>>,
    shards: Vec<Mutex<HashMap<u64, Member>>>,
    count: AtomicU64,
    /// The room's viewer count across all nodes, as last learned.
    pub viewers_total: AtomicU64,
}

impl RoomMembers {
    fn new() -> Self {
        Self {
            gate: RwLock::new(None),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicU64::new(0),
            viewers_total: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Member>> {
        &self.shards[(id as usize) % SHARDS]
    }

    /// True once the room's `seq` is known on this node.
    pub fn knows_seq(&self) -> bool {
        self.gate.read().expect("gate lock").is_some()
    }

    /// Sets the room's `seq` as read from Redis, unless events already moved it further.
    pub fn learn_seq(&self, seq: u64) {
        let mut gate = self.gate.write().expect("gate lock");
        *gate = Some(gate.map_or(seq, |g| g.max(seq)));
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
}

/// Delivery figures of one broadcast.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    pub slow: usize,
}

impl FanOut {
    /// Adds a member to a room (see [`FanOut::room_or_insert`]); returns its id (for
    /// [`FanOut::leave`]) and the `seq` of the last event delivered before it joined: the
    /// member receives exactly the events after it.
    pub fn join(&self, room: &RoomMembers, member: Member) -> (u64, u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let gate = room.gate.read().expect("gate lock");
        room.shard(id)
            .lock()
            .expect("shard lock")
            .insert(id, member);
        room.count.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("linkdrop_gateway_connections").increment(1.0);
        (id, gate.unwrap_or(0))
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
    pub fn broadcast(&self, room_id: &str, seq: Option<u64>, frame: &Utf8Bytes) -> Delivery {
        let Some(room) = self.room(room_id) else {
            return Delivery::default();
        };
        let mut gate = room.gate.write().expect("gate lock");
        if let (Some(seq), Some(last)) = (seq, *gate)
            && seq <= last
        {
            return Delivery::default();
        }
        if let Some(seq) = seq {
            *gate = Some(seq);
        }
        let mut delivery = Delivery::default();
        let mut removed = 0u64;
        for shard in &room.shards {
            let mut members = shard.lock().expect("shard lock");
            members.retain(|_, member| match member.queue.try_send(frame.clone()) {
                Ok(()) => {
                    delivery.queued += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.kill.fire(CloseReason::SlowConsumer);
                    delivery.slow += 1;
                    removed += 1;
                    false
                }
                // The connection is already gone; its own `leave` will find it removed.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    removed += 1;
                    false
                }
            });
        }
        if removed > 0 {
            room.count.fetch_sub(removed, Ordering::Relaxed);
            metrics::gauge!("linkdrop_gateway_connections").decrement(removed as f64);
        }
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
    pub fn send_to_user(&self, user_id: &str, frame: &Utf8Bytes) -> usize {
        let users = self.users.lock().expect("users lock");
        let Some(connections) = users.get(user_id) else {
            return 0;
        };
        connections
            .values()
            .filter(|member| match member.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.kill.fire(CloseReason::SlowConsumer);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            })
            .count()
    }

    /// Tells every connection on this node to close with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        for (_, room) in self.rooms() {
            for shard in &room.shards {
                for member in shard.lock().expect("shard lock").values() {
                    member.kill.fire(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(capacity: usize) -> (Member, mpsc::Receiver<Utf8Bytes>) {
        let (queue, rx) = mpsc::channel(capacity);
        (
            Member {
                queue,
                kill: Arc::new(Kill::default()),
            },
            rx,
        )
    }

    #[test]
    fn a_broadcast_reaches_every_member_of_the_room_only() {
        let fanout = FanOut::default();
        let (a, mut rx_a) = member(4);
        let (b, mut rx_b) = member(4);
        let (other, mut rx_other) = member(4);
        let r1 = fanout.room_or_insert("r1");
        fanout.join(&r1, a);
        fanout.join(&r1, b);
        fanout.join(&fanout.room_or_insert("r2"), other);
        let delivery = fanout.broadcast("r1", None, &Utf8Bytes::from_static("hi"));
        assert_eq!(delivery, Delivery { queued: 2, slow: 0 });
        assert_eq!(rx_a.try_recv().unwrap().as_str(), "hi");
        assert_eq!(rx_b.try_recv().unwrap().as_str(), "hi");
        assert!(rx_other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_closes_only_that_member_as_slow() {
        let fanout = FanOut::default();
        let (slow, _never_read) = member(1);
        let slow_kill = slow.kill.clone();
        let (fast, mut rx_fast) = member(8);
        let room = fanout.room_or_insert("r");
        fanout.join(&room, slow);
        fanout.join(&room, fast);
        fanout.broadcast("r", None, &Utf8Bytes::from_static("1"));
        let delivery = fanout.broadcast("r", None, &Utf8Bytes::from_static("2"));
        assert_eq!(delivery, Delivery { queued: 1, slow: 1 });
        assert_eq!(slow_kill.fired().await, CloseReason::SlowConsumer);
        assert_eq!(room.len(), 1);
        assert_eq!(rx_fast.try_recv().unwrap().as_str(), "1");
        assert_eq!(rx_fast.try_recv().unwrap().as_str(), "2");
    }

    #[test]
    fn leaving_twice_counts_once_and_empty_rooms_are_pruned() {
        let fanout = FanOut::default();
        let (m, _rx) = member(1);
        let room = fanout.room_or_insert("r");
        let (id, _) = fanout.join(&room, m);
        fanout.leave(&room, id);
        fanout.leave(&room, id);
        assert_eq!(room.len(), 0);
        fanout.prune();
        assert!(fanout.room("r").is_some(), "still held by its session");
        drop(room);
        fanout.prune();
        assert!(fanout.room("r").is_none());
    }

    #[test]
    fn a_member_gets_exactly_the_events_after_its_join_seq() {
        let fanout = FanOut::default();
        let room = fanout.room_or_insert("r");
        room.learn_seq(7);
        fanout.broadcast("r", Some(8), &Utf8Bytes::from_static("8"));
        let (m, mut rx) = member(8);
        let (_, seen) = fanout.join(&room, m);
        assert_eq!(seen, 8);
        // A late copy of event 8 (e.g. the bus catching up) is not delivered again.
        fanout.broadcast("r", Some(8), &Utf8Bytes::from_static("8 again"));
        fanout.broadcast("r", Some(9), &Utf8Bytes::from_static("9"));
        assert_eq!(rx.try_recv().unwrap().as_str(), "9");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn learning_an_older_seq_never_moves_the_gate_back() {
        let fanout = FanOut::default();
        let room = fanout.room_or_insert("r");
        fanout.broadcast("r", Some(5), &Utf8Bytes::from_static("5"));
        room.learn_seq(3);
        let (m, _rx) = member(1);
        assert_eq!(fanout.join(&room, m).1, 5);
    }

    #[test]
    fn a_user_frame_reaches_only_that_users_connections() {
        let fanout = FanOut::default();
        let room = fanout.room_or_insert("r");
        let (a, mut rx_a) = member(4);
        let (b, mut rx_b) = member(4);
        let (id_a, _) = fanout.join(&room, a.clone());
        fanout.join_user("alice", id_a, a);
        let (id_b, _) = fanout.join(&room, b.clone());
        fanout.join_user("bob", id_b, b);
        assert_eq!(
            fanout.send_to_user("alice", &Utf8Bytes::from_static("won")),
            1
        );
        assert_eq!(rx_a.try_recv().unwrap().as_str(), "won");
        assert!(rx_b.try_recv().is_err());
        fanout.leave_user("alice", id_a);
        assert_eq!(
            fanout.send_to_user("alice", &Utf8Bytes::from_static("x")),
            0
        );
    }
}

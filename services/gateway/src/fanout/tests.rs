//! The fan-out's unit tests: mailboxes, joins against broadcasts, catch-up, slow consumers.

use futures::FutureExt;

use super::*;

/// A member, and a second handle on its mailbox to read it with.
fn member(capacity: usize) -> (Member, Member) {
    let member = Mailbox::new(capacity);
    (member.clone(), member)
}

/// The frame the member's writer would send next, without waiting.
fn queued(mailbox: &Mailbox) -> Option<Frame> {
    match mailbox.next().now_or_never() {
        Some(Next::Send(frame)) => Some(frame),
        _ => None,
    }
}

#[test]
fn a_broadcast_reaches_every_member_of_the_room_only() {
    let fanout = FanOut::default();
    let (a, rx_a) = member(4);
    let (b, rx_b) = member(4);
    let (other, rx_other) = member(4);
    let r1 = fanout.room_or_insert("r1");
    fanout.join(&r1, a, None);
    fanout.join(&r1, b, None);
    fanout.join(&fanout.room_or_insert("r2"), other, None);
    let delivery = fanout.broadcast("r1", None, &Frame::text("hi"));
    assert_eq!(
        delivery,
        Delivery {
            written: 0,
            queued: 2,
            slow: 0
        }
    );
    assert_eq!(queued(&rx_a).unwrap(), Frame::text("hi"));
    assert_eq!(queued(&rx_b).unwrap(), Frame::text("hi"));
    assert!(queued(&rx_other).is_none());
}

#[tokio::test]
async fn a_full_queue_closes_only_that_member_as_slow() {
    let fanout = FanOut::default();
    let (slow, _never_read) = member(1);
    let slow_kill = slow.clone();
    let (fast, rx_fast) = member(8);
    let room = fanout.room_or_insert("r");
    fanout.join(&room, slow, None);
    fanout.join(&room, fast, None);
    fanout.broadcast("r", None, &Frame::text("1"));
    let delivery = fanout.broadcast("r", None, &Frame::text("2"));
    assert_eq!(
        delivery,
        Delivery {
            written: 0,
            queued: 1,
            slow: 1
        }
    );
    assert_eq!(
        slow_kill.next().await,
        Next::Close(CloseReason::SlowConsumer)
    );
    assert_eq!(room.len(), 1);
    assert_eq!(queued(&rx_fast).unwrap(), Frame::text("1"));
    assert_eq!(queued(&rx_fast).unwrap(), Frame::text("2"));
}

#[test]
fn leaving_twice_counts_once_and_empty_rooms_are_pruned() {
    let fanout = FanOut::default();
    let (m, _rx) = member(1);
    let room = fanout.room_or_insert("r");
    let id = fanout.join(&room, m, None).id;
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
    fanout.broadcast("r", Some(8), &Frame::text("8"));
    let (m, rx) = member(8);
    let seen = fanout.join(&room, m, None).seq;
    assert_eq!(seen, 8);
    // A late copy of event 8 (e.g. the bus catching up) is not delivered again.
    fanout.broadcast("r", Some(8), &Frame::text("8 again"));
    fanout.broadcast("r", Some(9), &Frame::text("9"));
    assert_eq!(queued(&rx).unwrap(), Frame::text("9"));
    assert!(queued(&rx).is_none());
}

#[test]
fn learning_an_older_seq_never_moves_the_gate_back() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    fanout.broadcast("r", Some(5), &Frame::text("5"));
    room.learn_seq(3);
    let (m, _rx) = member(1);
    assert_eq!(fanout.join(&room, m, None).seq, 5);
}

#[test]
fn a_user_frame_reaches_only_that_users_connections() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    let (a, rx_a) = member(4);
    let (b, rx_b) = member(4);
    let id_a = fanout.join(&room, a.clone(), None).id;
    fanout.join_user("alice", id_a, a);
    let id_b = fanout.join(&room, b.clone(), None).id;
    fanout.join_user("bob", id_b, b);
    assert_eq!(fanout.send_to_user("alice", &Frame::text("won")), 1);
    assert_eq!(queued(&rx_a).unwrap(), Frame::text("won"));
    assert!(queued(&rx_b).is_none());
    fanout.leave_user("alice", id_a);
    assert_eq!(fanout.send_to_user("alice", &Frame::text("x")), 0);
}

#[test]
fn a_viewer_that_reconnects_gets_what_it_missed_from_the_ring() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    room.learn_seq(0);
    for seq in 1..=5 {
        fanout.broadcast("r", Some(seq), &Frame::text(&format!("e{seq}")));
    }
    let (m, _rx) = member(8);
    let joined = fanout.join(&room, m, Some(3));
    assert_eq!(joined.seq, 5);
    let expected = vec![Frame::text("e4"), Frame::text("e5")];
    assert_eq!(joined.catchup, Catchup::Frames(expected));
    let (m, _rx) = member(8);
    assert_eq!(fanout.join(&room, m, Some(5)).catchup, Catchup::UpToDate);
}

#[test]
fn events_older_than_the_ring_come_from_the_history() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    room.learn_seq(0);
    for seq in 1..=(RING as u64 + 10) {
        fanout.broadcast("r", Some(seq), &Frame::text("e"));
    }
    let (m, _rx) = member(8);
    let joined = fanout.join(&room, m, Some(2));
    assert_eq!(
        joined.catchup,
        Catchup::FromHistory {
            after: 2,
            until: RING as u64 + 10
        }
    );
}

#[tokio::test]
async fn a_member_over_its_byte_budget_is_a_slow_consumer() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    let (m, _rx) = member(10_000);
    let kill = m.clone();
    fanout.join(&room, m, None);
    let big = Frame::text(&"x".repeat(MAX_QUEUED_BYTES / 2 + 1));
    assert_eq!(fanout.broadcast("r", None, &big).queued, 1);
    assert_eq!(fanout.broadcast("r", None, &big).slow, 1);
    assert_eq!(kill.next().await, Next::Close(CloseReason::SlowConsumer));
}

#[tokio::test]
async fn a_waiting_writer_wakes_for_each_offered_frame_in_order() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    let (m, rx) = member(8);
    fanout.join(&room, m, None);
    let writer = tokio::spawn(async move { [rx.next().await, rx.next().await] });
    tokio::task::yield_now().await;
    fanout.broadcast("r", None, &Frame::text("1"));
    fanout.broadcast("r", None, &Frame::text("2"));
    let expected = [1, 2].map(|n| Next::Send(Frame::text(&n.to_string())));
    assert_eq!(writer.await.unwrap(), expected);
}

#[test]
fn a_closed_mailbox_takes_nothing_and_leaves_the_room() {
    let fanout = FanOut::default();
    let room = fanout.room_or_insert("r");
    let (m, rx) = member(8);
    fanout.join(&room, m, None);
    rx.close();
    let delivery = fanout.broadcast("r", None, &Frame::text("late"));
    assert_eq!(
        delivery,
        Delivery {
            written: 0,
            queued: 0,
            slow: 0
        }
    );
    assert_eq!(room.len(), 0);
    assert!(queued(&rx).is_none());
}

#[test]
fn a_viewer_count_goes_out_when_it_changed_and_the_pace_allows() {
    let room = RoomMembers::new();
    assert!(
        room.viewers_due(10, Duration::from_secs(3600)),
        "the first count"
    );
    assert!(
        !room.viewers_due(10, Duration::ZERO),
        "the same count again"
    );
    assert!(
        !room.viewers_due(11, Duration::from_secs(3600)),
        "a changed count before the pace allows it"
    );
    assert!(
        room.viewers_due(11, Duration::ZERO),
        "a changed count when due"
    );
    assert!(!room.viewers_due(11, Duration::ZERO), "sent: not again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_walked_on_several_threads_reaches_each_member_once() {
    let fanout = FanOut::walked_by(4);
    let room = fanout.room_or_insert("r");
    let members: Vec<Member> = (0..3 * MEMBERS_PER_WALKER)
        .map(|_| {
            let (m, rx) = member(1);
            fanout.join(&room, m, None);
            rx
        })
        .collect();
    // One member per shard is closed already: each walker removes its share.
    let gone: Vec<u64> = (0..SHARDS as u64).collect();
    for id in &gone {
        members[*id as usize].close();
    }
    let delivery = fanout.broadcast("r", None, &Frame::text("1"));
    assert_eq!(delivery.queued, members.len() - gone.len());
    assert_eq!(room.len(), delivery.queued as u64);
    for (id, member) in members.iter().enumerate() {
        let expected = (!gone.contains(&(id as u64))).then(|| Frame::text("1"));
        assert_eq!(queued(member), expected, "member {id}");
        assert_eq!(queued(member), None, "member {id} got it once");
    }
}

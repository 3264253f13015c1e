//! The host's analytics as each process collects them: counted in memory as things happen
//! (a viewer joins or leaves, a gateway samples its viewers each second, an order request
//! arrives, a countdown is fanned out before its drop opens) and added to the records in
//! one transaction every `analytics_flush_ms` — never one write per event. Off
//! (`analytics = false`, or a process without records), every call is a no-op.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkdrop_domain::clock::now_ms;
use linkdrop_records::analytics::{self, Batch, DropTally, RoomSecond, ViewerSeen};
use linkdrop_records::db::Db;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Viewers a process remembers having reported (so that each is written once per room);
/// beyond this the memory is cleared and the records keep only the first sighting anyway.
const SEEN_LIMIT: usize = 1_000_000;
/// Longest gap between two samples of a room that is filled with the earlier sample (a
/// late tick), rather than left as seconds without viewers.
const FILL_GAP_S: i64 = 5;

/// A process's collector. Cheap to clone; `Analytics::off()` collects nothing.
#[derive(Clone, Default)]
pub struct Analytics(Option<Arc<Mutex<Pending>>>);

#[derive(Default)]
struct Pending {
    /// Per room, per second.
    seconds: HashMap<String, BTreeMap<i64, Counts>>,
    /// The last second sampled per room, and its viewers.
    sampled: HashMap<String, (i64, i64)>,
    drops: HashMap<String, DropTally>,
    /// Per room, the viewers already reported (each room's name is kept once).
    seen: HashMap<String, HashSet<String>>,
    /// How many viewers `seen` holds over all rooms.
    seen_count: usize,
    viewers: Vec<ViewerSeen>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    viewers: i64,
    joins: i64,
    leaves: i64,
}

impl Analytics {
    /// A collector that collects.
    pub fn on() -> Self {
        Self(Some(Arc::default()))
    }

    /// A collector that collects nothing.
    pub fn off() -> Self {
        Self(None)
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn with(&self, f: impl FnOnce(&mut Pending)) {
        if let Some(pending) = &self.0 {
            f(&mut pending.lock().expect("analytics lock"));
        }
    }

    /// `user_id` joined `room_id` (on this node) now.
    pub fn joined(&self, room_id: &str, user_id: &str) {
        let now = now_ms();
        self.with(|p| p.join(room_id, user_id, now));
    }

    /// A viewer of `room_id` left (on this node) now.
    pub fn left(&self, room_id: &str) {
        let at_s = now_ms().div_euclid(1000);
        self.with(|p| p.counts(room_id, at_s).leaves += 1);
    }

    /// This node holds `viewers` of `room_id` now. One sample per second counts (a second
    /// tick within the same second is ignored); seconds skipped by a late tick take the
    /// sample before them.
    pub fn sampled(&self, room_id: &str, viewers: u64) {
        let at_s = now_ms().div_euclid(1000);
        self.with(|p| p.sample(room_id, at_s, viewers as i64));
    }

    /// An order request for `drop_id` arrived, whatever its answer.
    pub fn tapped(&self, drop_id: &str) {
        self.with(|p| p.tally(drop_id).taps += 1);
    }

    /// The countdown of `drop_id` was queued to `viewers` viewers before the drop opened.
    pub fn countdown_reached(&self, drop_id: &str, viewers: u64) {
        self.with(|p| p.tally(drop_id).countdown_reached += viewers as i64);
    }

    /// Everything counted since the last call, but for the seconds of a room this node has
    /// not sampled yet (a join before the second's viewer count): they wait for their
    /// count, or until they are [`FILL_GAP_S`] old.
    pub fn take(&self) -> Batch {
        let now_s = now_ms().div_euclid(1000);
        let mut batch = Batch::default();
        self.with(|p| {
            for (room_id, seconds) in p.seconds.iter_mut() {
                let sampled_to = p.sampled.get(room_id).map_or(i64::MIN, |(at_s, _)| *at_s);
                let ready_to = sampled_to.max(now_s - FILL_GAP_S - 1);
                let waiting = seconds.split_off(&(ready_to + 1));
                let ready = std::mem::replace(seconds, waiting);
                batch
                    .seconds
                    .extend(ready.into_iter().map(|(at_s, c)| RoomSecond {
                        room_id: room_id.clone(),
                        at_s,
                        viewers: c.viewers,
                        joins: c.joins,
                        leaves: c.leaves,
                    }));
            }
            p.seconds.retain(|_, seconds| !seconds.is_empty());
            batch.viewers = std::mem::take(&mut p.viewers);
            batch.drops = std::mem::take(&mut p.drops).into_values().collect();
            // Rooms this node has not sampled for a while are forgotten.
            p.sampled.retain(|_, (at_s, _)| now_s - *at_s <= FILL_GAP_S);
        });
        batch
    }

    /// Puts back a batch that could not be written, to go with the next one.
    pub fn restore(&self, batch: Batch) {
        self.with(|p| {
            for s in batch.seconds {
                let counts = p.counts(&s.room_id, s.at_s);
                counts.viewers += s.viewers;
                counts.joins += s.joins;
                counts.leaves += s.leaves;
            }
            p.viewers.extend(batch.viewers);
            for d in batch.drops {
                let tally = p.tally(&d.drop_id);
                tally.taps += d.taps;
                tally.countdown_reached += d.countdown_reached;
            }
        });
    }

    /// Writes what was counted every `every` until `shutdown`, and once more then. A batch
    /// that fails is kept for the next attempt.
    pub fn start_flushing(
        &self,
        db: Db,
        every: Duration,
        shutdown: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        self.is_on().then(|| {
            let this = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let last = tokio::select! {
                        _ = shutdown.cancelled() => true,
                        _ = tick.tick() => false,
                    };
                    this.flush(&db).await;
                    if last {
                        return;
                    }
                }
            })
        })
    }

    /// Adds what was counted to the records now.
    pub async fn flush(&self, db: &Db) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = analytics::add(db, &batch, now_ms()).await {
            tracing::warn!(error = %e, "could not write the analytics; kept for the next batch");
            self.restore(batch);
        }
    }
}

impl Pending {
    fn join(&mut self, room_id: &str, user_id: &str, now_ms: i64) {
        self.counts(room_id, now_ms.div_euclid(1000)).joins += 1;
        if self.seen_count >= SEEN_LIMIT {
            self.seen.clear();
            self.seen_count = 0;
        }
        if !self.seen.contains_key(room_id) {
            self.seen.insert(room_id.to_string(), HashSet::new());
        }
        let seen = self.seen.get_mut(room_id).expect("inserted above");
        // A viewer coming back (a resume) copies nothing.
        if !seen.contains(user_id) {
            seen.insert(user_id.to_string());
            self.seen_count += 1;
            self.viewers.push(ViewerSeen {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
                first_seen_ms: now_ms,
            });
        }
    }

    fn sample(&mut self, room_id: &str, at_s: i64, viewers: i64) {
        if let Some(&(last_s, last_viewers)) = self.sampled.get(room_id) {
            if last_s >= at_s {
                return;
            }
            if at_s - last_s <= FILL_GAP_S {
                for s in last_s + 1..at_s {
                    self.counts(room_id, s).viewers = last_viewers;
                }
            }
        }
        self.counts(room_id, at_s).viewers = viewers;
        self.sampled.insert(room_id.to_string(), (at_s, viewers));
    }

    fn counts(&mut self, room_id: &str, at_s: i64) -> &mut Counts {
        // The room's name is copied only the first time (a tap or a join must not
        // allocate).
        if !self.seconds.contains_key(room_id) {
            self.seconds.insert(room_id.to_string(), BTreeMap::new());
        }
        let seconds = self.seconds.get_mut(room_id).expect("inserted above");
        seconds.entry(at_s).or_default()
    }

    fn tally(&mut self, drop_id: &str) -> &mut DropTally {
        if !self.drops.contains_key(drop_id) {
            let tally = DropTally {
                drop_id: drop_id.to_string(),
                taps: 0,
                countdown_reached: 0,
            };
            self.drops.insert(drop_id.to_string(), tally);
        }
        self.drops.get_mut(drop_id).expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewers(p: &Pending) -> Vec<(i64, i64)> {
        p.seconds["r"]
            .iter()
            .map(|(at_s, c)| (*at_s, c.viewers))
            .collect()
    }

    #[test]
    fn one_sample_per_second_counts_and_a_late_tick_fills_the_skipped_seconds() {
        let mut p = Pending::default();
        p.sample("r", 10, 4);
        p.sample("r", 10, 9);
        p.sample("r", 13, 6);
        assert_eq!(viewers(&p), [(10, 4), (11, 4), (12, 4), (13, 6)]);
        p.sample("r", 13 + FILL_GAP_S + 1, 1);
        assert_eq!(viewers(&p).len(), 5, "a long gap is not filled");
    }

    #[test]
    fn a_viewer_is_reported_once_per_room_and_a_batch_is_taken_once() {
        let analytics = Analytics::on();
        let now = now_ms();
        let now_s = now.div_euclid(1000);
        analytics.with(|p| {
            p.join("r1", "u1", now);
            p.join("r1", "u1", now);
            p.join("r2", "u1", now);
            p.counts("r1", now_s).leaves += 1;
            p.sample("r1", now_s, 1);
            p.sample("r2", now_s, 1);
        });
        analytics.tapped("d1");
        analytics.tapped("d1");
        analytics.countdown_reached("d1", 7);
        let batch = analytics.take();
        assert_eq!(batch.viewers.len(), 2);
        let joins: i64 = batch.seconds.iter().map(|s| s.joins).sum();
        let leaves: i64 = batch.seconds.iter().map(|s| s.leaves).sum();
        assert_eq!((joins, leaves), (3, 1));
        assert_eq!(batch.drops.len(), 1);
        assert_eq!(
            (batch.drops[0].taps, batch.drops[0].countdown_reached),
            (2, 7)
        );
        assert!(analytics.take().is_empty());
    }

    #[test]
    fn a_second_waits_for_its_viewer_count_before_it_is_written() {
        let analytics = Analytics::on();
        let now_s = now_ms().div_euclid(1000);
        analytics.with(|p| {
            p.sample("r", now_s - 1, 5);
            p.counts("r", now_s + 1).joins += 1;
        });
        let batch = analytics.take();
        assert_eq!(batch.seconds.len(), 1, "{:?}", batch.seconds);
        assert_eq!(batch.seconds[0].viewers, 5);
        analytics.with(|p| p.sample("r", now_s + 1, 6));
        let batch = analytics.take();
        let written: Vec<_> = batch.seconds.iter().map(|s| (s.viewers, s.joins)).collect();
        assert_eq!(
            written,
            [(5, 0), (6, 1)],
            "the second between takes the count before"
        );
    }

    #[test]
    fn a_batch_put_back_goes_with_the_next_one() {
        let analytics = Analytics::on();
        analytics.tapped("d1");
        let failed = analytics.take();
        analytics.tapped("d1");
        analytics.restore(failed);
        let batch = analytics.take();
        assert_eq!(batch.drops[0].taps, 2);
    }

    #[test]
    fn off_counts_nothing() {
        let analytics = Analytics::off();
        analytics.joined("r1", "u1");
        analytics.tapped("d1");
        assert!(analytics.take().is_empty());
    }
}

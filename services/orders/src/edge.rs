//! Edge answers: each orders process keeps, for every drop it has heard of, what it needs to
//! refuse a request by itself — phase, opening time, units left, the lottery draw, and the
//! shoppers who have a recorded answer — and answers 425 `not_open`, 410 `closed` and 409
//! `sold_out` without a call to the drop's live state and without writing anything.
//!
//! It learns from drop news (`linkdrop_domain::drop_news`): the channel every orders
//! process listens to, and the replies of its own admission batches. When it knows nothing
//! of a drop, or what it knows is older than the maximum age, it reads (`drop_state.lua`).
//! After a lost subscription it forgets everything and reads again.
//!
//! It must only ever refuse what the admission script would refuse at the same version of
//! the drop: never a shopper with a recorded answer (that key replays an order or a limit),
//! never a lottery before its draw, and never near the opening time, where the script
//! decides on the Redis clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use linkdrop_domain::clock::now_ms;
use linkdrop_domain::drop_news::{DropFacts, DropNews, LivePhase, NewsKind, with_news};
use linkdrop_domain::keys::Keys;
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::config::OrdersConfig;
use tokio_util::sync::CancellationToken;

/// Most shoppers with a recorded answer one process keeps per drop. A drop with more (a
/// large lottery) is not refused at the edge once sold out or closed: its script answers.
pub const MAX_ANSWERED: usize = 50_000;

/// A drop unused for this long is forgotten.
const IDLE_DROP: Duration = Duration::from_secs(600);

/// How the edge answers.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    /// Requests closer than this to the opening time go to the script.
    pub margin_ms: i64,
    /// What is known of a drop is read again once it is this old without news.
    pub max_age: Duration,
}

impl EdgeSettings {
    /// The edge's settings, or `None` when edge answers are switched off.
    pub fn from_config(config: &OrdersConfig) -> Option<Self> {
        config.edge.then(|| Self {
            // At most a minute (the configuration checks it).
            margin_ms: config.edge_margin_ms as i64,
            max_age: Duration::from_millis(config.edge_max_age_ms),
        })
    }
}

/// A refusal given at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    NotOpen { opens_at_ms: Option<i64> },
    Closed,
    SoldOut,
}

impl Refusal {
    /// The outcome label of `linkdrop_orders_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::NotOpen { .. } => "not_open",
            Self::Closed => "closed",
            Self::SoldOut => "sold_out",
        }
    }
}

/// The shoppers of a drop with a recorded answer, as far as this process knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Answered {
    #[default]
    Unknown,
    Known(HashSet<String>),
    TooMany,
}

impl Answered {
    fn of(users: impl IntoIterator<Item = String>) -> Self {
        let set: HashSet<String> = users.into_iter().collect();
        if set.len() > MAX_ANSWERED {
            Self::TooMany
        } else {
            Self::Known(set)
        }
    }

    fn add(&mut self, users: Vec<String>) {
        if let Self::Known(set) = self {
            set.extend(users);
            if set.len() > MAX_ANSWERED {
                *self = Self::TooMany;
            }
        }
    }
}

/// What the edge makes of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Refuse(Refusal),
    /// The admission script decides.
    Ask,
    /// A refusal depends on whether the shopper has a recorded answer, not known here.
    NeedAnswered,
}

/// The edge's verdict on `qty` units for `user` from what is known of a drop.
fn verdict(
    facts: &DropFacts,
    answered: &Answered,
    user: &str,
    qty: u32,
    now_ms: i64,
    margin_ms: i64,
) -> Verdict {
    let refuse_unless_answered = |refusal| match answered {
        Answered::Known(users) if users.contains(user) => Verdict::Ask,
        Answered::Known(_) => Verdict::Refuse(refusal),
        Answered::TooMany => Verdict::Ask,
        Answered::Unknown => Verdict::NeedAnswered,
    };
    match (facts.phase, facts.opens_at_ms) {
        (LivePhase::Draft, _) => Verdict::Refuse(Refusal::NotOpen { opens_at_ms: None }),
        (LivePhase::Closed, _) => refuse_unless_answered(Refusal::Closed),
        (LivePhase::Launched, Some(opens)) if now_ms < opens - margin_ms => {
            Verdict::Refuse(Refusal::NotOpen {
                opens_at_ms: Some(opens),
            })
        }
        (LivePhase::Launched, Some(opens))
            if now_ms >= opens
                && facts.stock_left <= 0
                && (facts.lottery_window_ms.is_none() || facts.drawn)
                && qty <= facts.max_per_user =>
        {
            refuse_unless_answered(Refusal::SoldOut)
        }
        _ => Verdict::Ask,
    }
}

/// What this process knows of one drop.
#[derive(Debug, Default)]
struct Known {
    facts: Option<DropFacts>,
    answered: Answered,
    /// When news or a read last told the facts.
    told_at: Option<Instant>,
    /// News applied so far (a read that overlapped news must not undo it).
    news_applied: u64,
    used_at: Option<Instant>,
}

impl Known {
    fn fresh_facts(&self, max_age: Duration) -> Option<&DropFacts> {
        let told_at = self.told_at?;
        (told_at.elapsed() <= max_age)
            .then_some(self.facts.as_ref())
            .flatten()
    }

    fn apply(&mut self, news: DropNews) {
        self.news_applied += 1;
        match &self.facts {
            Some(known) if news.facts.version <= known.version => return,
            Some(known)
                if news.facts.version == known.version + 1 && news.kind == NewsKind::Change =>
            {
                self.answered.add(news.users)
            }
            // The first change of a drop (its launch): nobody has an answer before it.
            None if news.facts.version == 1 && news.kind == NewsKind::Change => {
                self.answered = Answered::of(news.users)
            }
            _ => self.answered = Answered::Unknown,
        }
        self.facts = Some(news.facts);
        self.told_at = Some(Instant::now());
    }
}

/// One drop: what is known, and the right to read it (one read at a time).
#[derive(Default)]
struct Slot {
    known: Mutex<Known>,
    reading: tokio::sync::Mutex<()>,
}

impl Slot {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().expect("edge slot lock")
    }
}

/// What a read came to.
enum Read {
    Missing,
    Found,
}

/// The edge of one orders process; clones share it.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConn,
    keys: Keys,
    settings: EdgeSettings,
    read_script: redis::Script,
    drops: RwLock<HashMap<String, Arc<Slot>>>,
}

impl Edge {
    pub fn new(redis: RedisConn, keys: Keys, settings: EdgeSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                keys,
                settings,
                read_script: redis::Script::new(&with_news(include_str!("drop_state.lua"))),
                drops: RwLock::default(),
            }),
        }
    }

    /// The refusal the edge gives `qty` units of `drop_id` for `user`, or `None` when the
    /// admission script must decide. Reads the drop when what is known does not suffice.
    pub async fn check(
        &self,
        drop_id: &str,
        user: &str,
        qty: u32,
    ) -> Result<Option<Refusal>, redis::RedisError> {
        let slot = self.slot(drop_id);
        match self.judge(&slot, user, qty, true) {
            Some(Verdict::Refuse(refusal)) => return Ok(Some(refusal)),
            Some(Verdict::Ask) => return Ok(None),
            Some(Verdict::NeedAnswered) | None => {}
        }
        let _reading = slot.reading.lock().await;
        // Another request may have read while this one waited.
        match self.judge(&slot, user, qty, false) {
            Some(Verdict::Refuse(refusal)) => return Ok(Some(refusal)),
            Some(Verdict::Ask) => return Ok(None),
            Some(Verdict::NeedAnswered) | None => {}
        }
        if let Read::Missing = self.read(drop_id, &slot).await? {
            self.forget(drop_id);
            return Ok(Some(Refusal::NotFound));
        }
        Ok(match self.judge(&slot, user, qty, false) {
            Some(Verdict::Refuse(refusal)) => Some(refusal),
            _ => None,
        })
    }

    /// Like [`Edge::check`] from what is known right now, without reading: for requests that
    /// waited in the admission queue while the drop changed.
    pub fn check_known(&self, drop_id: &str, user: &str, qty: u32) -> Option<Refusal> {
        let slot = self.existing(drop_id)?;
        match self.judge(&slot, user, qty, false) {
            Some(Verdict::Refuse(refusal)) => Some(refusal),
            _ => None,
        }
    }

    fn judge(&self, slot: &Slot, user: &str, qty: u32, use_it: bool) -> Option<Verdict> {
        let mut known = slot.known();
        if use_it {
            known.used_at = Some(Instant::now());
        }
        let facts = known.fresh_facts(self.inner.settings.max_age)?;
        Some(verdict(
            facts,
            &known.answered,
            user,
            qty,
            now_ms(),
            self.inner.settings.margin_ms,
        ))
    }

    /// Takes in a line of drop news (from the channel or an admission batch's reply).
    pub fn hear(&self, news: DropNews) {
        let slot = self.slot(&news.drop_id);
        slot.known().apply(news);
    }

    /// Forgets every drop: news may have been missed.
    pub fn forget_all(&self) {
        self.inner.drops.write().expect("edge lock").clear();
    }

    fn forget(&self, drop_id: &str) {
        self.inner.drops.write().expect("edge lock").remove(drop_id);
    }

    fn existing(&self, drop_id: &str) -> Option<Arc<Slot>> {
        self.inner
            .drops
            .read()
            .expect("edge lock")
            .get(drop_id)
            .cloned()
    }

    fn slot(&self, drop_id: &str) -> Arc<Slot> {
        if let Some(slot) = self.existing(drop_id) {
            return slot;
        }
        self.inner
            .drops
            .write()
            .expect("edge lock")
            .entry(drop_id.to_string())
            .or_default()
            .clone()
    }

    /// Reads the drop's current news and, unless already known at that version, its
    /// shoppers with a recorded answer.
    async fn read(&self, drop_id: &str, slot: &Slot) -> Result<Read, redis::RedisError> {
        let (known_version, news_before) = {
            let known = slot.known();
            let version = match (&known.facts, &known.answered) {
                (Some(facts), Answered::Known(_) | Answered::TooMany) => facts.version as i64,
                _ => -1,
            };
            (version, known.news_applied)
        };
        let keys = &self.inner.keys;
        let reply: Vec<String> = self
            .inner
            .read_script
            .key(keys.drop_meta(drop_id))
            .key(keys.drop_idempotency(drop_id))
            .arg(drop_id)
            .arg(known_version)
            .arg(MAX_ANSWERED)
            .invoke_async(&mut self.inner.redis.clone())
            .await?;
        metrics::counter!("linkdrop_orders_edge_reads_total").increment(1);
        let protocol = |detail: &str| {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "drop state read",
                detail.to_string(),
            ))
        };
        let (news, rest) = match reply.split_first() {
            Some((first, _)) if first == "missing" => return Ok(Read::Missing),
            Some((news, rest)) => (
                DropNews::parse(news).map_err(|e| protocol(&e.to_string()))?,
                rest,
            ),
            None => return Err(protocol("empty reply")),
        };
        let answered = match rest.split_first() {
            Some((kind, _)) if kind == "known" => None,
            Some((kind, _)) if kind == "too_many" => Some(Answered::TooMany),
            Some((kind, fields)) if kind == "answers" => {
                Some(Answered::of(fields.iter().filter_map(|f| {
                    f.split_once(' ').map(|(user, _)| user.to_string())
                })))
            }
            _ => return Err(protocol(&format!("unexpected {rest:?}"))),
        };
        let mut known = slot.known();
        let overtaken = known.news_applied != news_before
            && known
                .facts
                .as_ref()
                .is_some_and(|f| f.version > news.facts.version);
        if !overtaken {
            known.facts = Some(news.facts);
            if let Some(answered) = answered {
                known.answered = answered;
            }
            known.told_at = Some(Instant::now());
        }
        Ok(Read::Found)
    }

    /// Forgets drops nobody asked about for a while, every minute until `shutdown`.
    pub async fn sweep(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.inner
                .drops
                .write()
                .expect("edge lock")
                .retain(|_, slot| {
                    let known = slot.known();
                    let last = known.used_at.or(known.told_at);
                    last.is_some_and(|at| at.elapsed() < IDLE_DROP)
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: i64 = 250;

    fn facts(phase: LivePhase, stock_left: i64) -> DropFacts {
        DropFacts {
            version: 3,
            phase,
            opens_at_ms: (phase != LivePhase::Draft).then_some(10_000),
            stock_left,
            lottery_window_ms: None,
            drawn: false,
            max_per_user: 2,
        }
    }

    fn nobody() -> Answered {
        Answered::Known(HashSet::new())
    }

    fn judge(facts: &DropFacts, answered: &Answered, now: i64) -> Verdict {
        verdict(facts, answered, "u1", 1, now, MARGIN)
    }

    #[test]
    fn a_draft_is_not_open() {
        let draft = facts(LivePhase::Draft, 5);
        assert_eq!(
            judge(&draft, &Answered::Unknown, 0),
            Verdict::Refuse(Refusal::NotOpen { opens_at_ms: None })
        );
    }

    #[test]
    fn only_requests_well_before_the_opening_are_refused() {
        let launched = facts(LivePhase::Launched, 5);
        assert_eq!(
            judge(&launched, &nobody(), 10_000 - MARGIN - 1),
            Verdict::Refuse(Refusal::NotOpen {
                opens_at_ms: Some(10_000)
            })
        );
        assert_eq!(judge(&launched, &nobody(), 10_000 - MARGIN), Verdict::Ask);
        assert_eq!(judge(&launched, &nobody(), 10_001), Verdict::Ask);
    }

    #[test]
    fn sold_out_is_refused_except_to_a_shopper_with_a_recorded_answer() {
        let sold_out = facts(LivePhase::Launched, 0);
        assert_eq!(
            judge(&sold_out, &nobody(), 10_001),
            Verdict::Refuse(Refusal::SoldOut)
        );
        let answered = Answered::Known(HashSet::from(["u1".to_string()]));
        assert_eq!(judge(&sold_out, &answered, 10_001), Verdict::Ask);
        assert_eq!(
            judge(&sold_out, &Answered::Unknown, 10_001),
            Verdict::NeedAnswered
        );
        assert_eq!(judge(&sold_out, &Answered::TooMany, 10_001), Verdict::Ask);
    }

    #[test]
    fn a_quantity_over_the_limit_is_left_to_the_script() {
        let sold_out = facts(LivePhase::Launched, 0);
        assert_eq!(
            verdict(&sold_out, &nobody(), "u1", 3, 10_001, MARGIN),
            Verdict::Ask
        );
    }

    #[test]
    fn a_lottery_is_not_sold_out_before_its_draw() {
        let mut lottery = facts(LivePhase::Launched, 0);
        lottery.lottery_window_ms = Some(2000);
        assert_eq!(judge(&lottery, &nobody(), 10_001), Verdict::Ask);
        lottery.drawn = true;
        assert_eq!(
            judge(&lottery, &nobody(), 10_001),
            Verdict::Refuse(Refusal::SoldOut)
        );
    }

    #[test]
    fn closed_is_refused_except_to_a_shopper_with_a_recorded_answer() {
        let closed = facts(LivePhase::Closed, 3);
        assert_eq!(
            judge(&closed, &nobody(), 10_001),
            Verdict::Refuse(Refusal::Closed)
        );
        let answered = Answered::Known(HashSet::from(["u1".to_string()]));
        assert_eq!(judge(&closed, &answered, 10_001), Verdict::Ask);
    }

    fn news(version: u64, kind: NewsKind, users: &[&str]) -> DropNews {
        let mut facts = facts(LivePhase::Launched, 5);
        facts.version = version;
        DropNews {
            kind,
            drop_id: "drp_1".into(),
            facts,
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn news_in_sequence_adds_its_shoppers() {
        let mut known = Known::default();
        known.apply(news(1, NewsKind::Change, &[]));
        known.apply(news(2, NewsKind::Change, &["a"]));
        known.apply(news(3, NewsKind::Change, &["b"]));
        assert_eq!(
            known.answered,
            Answered::Known(HashSet::from(["a".to_string(), "b".to_string()]))
        );
        assert_eq!(known.facts.unwrap().version, 3);
    }

    #[test]
    fn a_gap_in_the_news_makes_the_shoppers_unknown() {
        let mut known = Known::default();
        known.apply(news(1, NewsKind::Change, &["a"]));
        known.apply(news(3, NewsKind::Change, &["c"]));
        assert_eq!(known.answered, Answered::Unknown);
        assert_eq!(known.facts.as_ref().unwrap().version, 3);
        // Older news changes nothing.
        known.apply(news(2, NewsKind::Change, &["b"]));
        assert_eq!(known.facts.unwrap().version, 3);
    }

    #[test]
    fn news_of_a_drop_first_heard_late_leaves_its_shoppers_unknown() {
        let mut known = Known::default();
        known.apply(news(5, NewsKind::Change, &["e"]));
        assert_eq!(known.answered, Answered::Unknown);
    }
}

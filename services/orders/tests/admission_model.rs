//! The drop's scripts against a plain model in Rust, on real Redis and on the embedded
//! backend's engine (`linkdrop_engine::Engine`, which runs the same scripts): random
//! sequences of launch, order, batches of orders (one script call deciding several
//! requests in order), retry (same key, same or other body), close, pay, deadline passing
//! and expiry run on each backend, and answers and state (stock left, units per user,
//! units paid, outbox length) must agree with the model after every step. Needs the
//! stack's Redis (`scripts/stack up`).

use std::collections::HashMap;
use std::sync::OnceLock;

use linkdrop_domain::ids::{new_id, prefix};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::model::{IdempotencyKey, Quantity};
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::backends::connect_redis;
use linkdrop_infra::config::RedisTarget;
use linkdrop_infra::room_bus::RoomBus;
use linkdrop_orders::admission::{Admission, Answer, Decision, OrderRequest, Rejection};
use linkdrop_orders::lifecycle::{Lifecycle, Payment};
use linkdrop_orders::stock::{STOCK_EVENT_INTERVAL, StockTicker};
use proptest::prelude::*;

const STOCK: u32 = 6;
const MAX_PER_USER: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Launch,
    Order {
        user: u8,
        key: u8,
        qty: u32,
    },
    /// Orders decided by one script call, in this order.
    Batch {
        requests: Vec<(u8, u8, u32)>,
    },
    Close,
    /// Pay the n-th reservation (modulo their number).
    Pay {
        nth: usize,
    },
    /// The n-th reservation's deadline passes.
    Overdue {
        nth: usize,
    },
    /// The expiry worker looks at the n-th reservation.
    Expire {
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Launch),
        12 => (0u8..4, 0u8..5, 1u32..=3).prop_map(|(user, key, qty)| Op::Order { user, key, qty }),
        4 => proptest::collection::vec((0u8..4, 0u8..5, 1u32..=3), 1..8)
            .prop_map(|requests| Op::Batch { requests }),
        1 => Just(Op::Close),
        2 => (0usize..8).prop_map(|nth| Op::Pay { nth }),
        2 => (0usize..8).prop_map(|nth| Op::Overdue { nth }),
        2 => (0usize..8).prop_map(|nth| Op::Expire { nth }),
    ]
}

/// A reservation as the model sees it.
#[derive(Debug, Clone)]
struct Reservation {
    order_id: String,
    user: u8,
    qty: u32,
    status: &'static str,
    overdue: bool,
}

/// What an order request came to, without the order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Reserved(u32),
    SoldOut,
    LimitReached,
    NotOpen,
    Closed,
    Conflict,
    QtyOverLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Draft,
    Launched,
    Closed,
}

/// The rules of API.md and ARCHITECTURE.md, written plainly.
struct Model {
    phase: Phase,
    stock_left: u32,
    held: HashMap<u8, u32>,
    recorded: HashMap<(u8, u8), (u32, Outcome)>,
    reservations: Vec<Reservation>,
    paid: u32,
    /// Entries the drop's scripts appended to its outbox.
    outbox: usize,
}

impl Model {
    fn new() -> Self {
        Self {
            phase: Phase::Draft,
            stock_left: STOCK,
            held: HashMap::new(),
            recorded: HashMap::new(),
            reservations: Vec::new(),
            paid: 0,
            outbox: 0,
        }
    }

    /// Pays reservation `i`: paid before its deadline, expired after it.
    fn pay(&mut self, i: usize) -> &'static str {
        let r = &self.reservations[i];
        match (r.status, r.overdue) {
            ("reserved", false) => {
                self.paid += r.qty;
                self.outbox += 1;
                self.reservations[i].status = "paid";
                "paid"
            }
            ("reserved", true) => {
                self.expire(i);
                "expired"
            }
            (status, _) => status,
        }
    }

    /// Expires reservation `i` if it is reserved and overdue.
    fn expire(&mut self, i: usize) {
        let r = self.reservations[i].clone();
        if r.status == "reserved" && r.overdue {
            self.stock_left += r.qty;
            let held = self.held.get_mut(&r.user).unwrap();
            *held -= r.qty;
            if *held == 0 {
                self.held.remove(&r.user);
            }
            self.outbox += 1;
            self.reservations[i].status = "expired";
        }
    }

    fn order(&mut self, user: u8, key: u8, qty: u32) -> Outcome {
        if let Some((recorded_qty, outcome)) = self.recorded.get(&(user, key)) {
            return if *recorded_qty == qty {
                *outcome
            } else {
                Outcome::Conflict
            };
        }
        match self.phase {
            Phase::Closed => return Outcome::Closed,
            Phase::Draft => return Outcome::NotOpen,
            Phase::Launched => {}
        }
        if qty > MAX_PER_USER {
            return Outcome::QtyOverLimit;
        }
        let held = self.held.get(&user).copied().unwrap_or(0);
        let outcome = if held + qty > MAX_PER_USER {
            Outcome::LimitReached
        } else if self.stock_left < qty {
            // Not recorded: units may come back, and the same key may have them.
            return Outcome::SoldOut;
        } else {
            self.stock_left -= qty;
            *self.held.entry(user).or_default() += qty;
            // The order, and the sell-out when it took the last unit.
            self.outbox += if self.stock_left == 0 { 2 } else { 1 };
            Outcome::Reserved(qty)
        };
        self.recorded.insert((user, key), (qty, outcome));
        outcome
    }
}

fn outcome_of(decision: &Decision) -> Outcome {
    let answer = match decision {
        Decision::Fresh { answer, .. } | Decision::Replay(answer) => answer,
        Decision::Reject(Rejection::NotOpen { .. }) => return Outcome::NotOpen,
        Decision::Reject(Rejection::Closed) => return Outcome::Closed,
        Decision::Reject(Rejection::IdempotencyConflict) => return Outcome::Conflict,
        Decision::Reject(Rejection::QtyOverLimit { .. }) => return Outcome::QtyOverLimit,
        Decision::Reject(Rejection::SoldOut) => return Outcome::SoldOut,
        Decision::Reject(other) => panic!("unexpected rejection {other:?}"),
    };
    match answer {
        Answer::Reserved { qty, .. } => Outcome::Reserved(*qty),
        Answer::LimitReached { .. } => Outcome::LimitReached,
        Answer::Entered { .. } => panic!("fcfs drops have no entries"),
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    redis: RedisConn,
    engine: RedisConn,
    keys: Keys,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = std::env::var("LINKDROP_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:16379".to_string());
        let redis = runtime
            .block_on(connect_redis(&RedisTarget::Single(url)))
            .expect("the stack's Redis is up (run ./scripts/stack up)");
        World {
            runtime,
            redis,
            engine: RedisConn::Embedded(linkdrop_engine::Engine::in_memory()),
            keys: Keys::new(&format!("model{}", &new_id("")[10..])),
        }
    })
}

async fn hset(redis: &RedisConn, key: &str, fields: &[(&str, String)]) {
    redis::cmd("HSET")
        .arg(key)
        .arg(fields)
        .query_async::<()>(&mut redis.clone())
        .await
        .unwrap();
}

/// Shopper `user-<user>` orders `qty` with the key `key-<key>`.
async fn order(admission: &Admission, drop_id: &str, user: u8, key: u8, qty: i64) -> Decision {
    let idem = IdempotencyKey::parse(Some(&format!("key-{key}"))).unwrap();
    admission
        .admit(
            drop_id,
            &format!("user-{user}"),
            &idem,
            Quantity::parse(qty).unwrap(),
        )
        .await
        .unwrap()
}

/// A new drop of [`STOCK`] units, at most [`MAX_PER_USER`] each, as its launch script would
/// leave it (`phase` and `opens_at_ms` in `extra`); its id.
async fn new_drop(
    redis: &RedisConn,
    keys: &Keys,
    policy: &str,
    window_ms: u32,
    extra: &[(&str, String)],
) -> String {
    let drop_id = new_id(prefix::DROP);
    let mut fields = vec![
        ("stock", STOCK.to_string()),
        ("stock_left", STOCK.to_string()),
        ("max_per_user", MAX_PER_USER.to_string()),
        ("policy", policy.to_string()),
        ("window_ms", window_ms.to_string()),
        ("pay_within_ms", "600000".to_string()),
    ];
    fields.extend(extra.iter().cloned());
    hset(redis, &keys.drop_meta(&drop_id), &fields).await;
    drop_id
}

async fn run(redis: &RedisConn, keys: &Keys, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let drop_id = new_drop(redis, keys, "fcfs", 0, &[("phase", "draft".into())]).await;
    let meta = keys.drop_meta(&drop_id);
    let admission = Admission::new(redis.clone(), keys.clone());
    let bus = RoomBus::new(redis.clone(), keys.clone());
    let stock = StockTicker::new(bus, redis.clone(), keys.clone(), STOCK_EVENT_INTERVAL);
    let lifecycle = Lifecycle::new(redis.clone(), keys.clone(), stock);
    let mut model = Model::new();
    let mut order_ids: HashMap<(u8, u8), String> = HashMap::new();
    for op in ops {
        match op {
            Op::Launch => {
                if model.phase == Phase::Draft {
                    model.phase = Phase::Launched;
                    let opened = (linkdrop_domain::clock::now_ms() - 1000).to_string();
                    hset(
                        redis,
                        &meta,
                        &[("phase", "launched".into()), ("opens_at_ms", opened)],
                    )
                    .await;
                }
            }
            Op::Close => {
                model.phase = Phase::Closed;
                hset(redis, &meta, &[("phase", "closed".into())]).await;
            }
            Op::Order { user, key, qty } => {
                let decision = order(&admission, &drop_id, user, key, i64::from(qty)).await;
                check_order(&mut model, &mut order_ids, (user, key, qty), &decision)?;
            }
            Op::Batch { requests } => {
                let decisions = order_batch(&admission, &drop_id, &requests).await;
                prop_assert_eq!(decisions.len(), requests.len());
                for (request, decision) in requests.into_iter().zip(&decisions) {
                    check_order(&mut model, &mut order_ids, request, decision)?;
                }
            }
            Op::Pay { nth } if !model.reservations.is_empty() => {
                let i = nth % model.reservations.len();
                let r = model.reservations[i].clone();
                let expected = model.pay(i);
                let payment = lifecycle
                    .pay(&r.order_id, &format!("user-{}", r.user), "ref-1")
                    .await
                    .unwrap();
                prop_assert_eq!(payment_name(&payment), expected, "paying {}", r.order_id);
            }
            Op::Overdue { nth } if !model.reservations.is_empty() => {
                let i = nth % model.reservations.len();
                model.reservations[i].overdue = true;
                make_overdue(redis, keys, &drop_id, &model.reservations[i].order_id).await;
            }
            Op::Expire { nth } if !model.reservations.is_empty() => {
                let i = nth % model.reservations.len();
                model.expire(i);
                lifecycle
                    .expire(&drop_id, &model.reservations[i].order_id)
                    .await
                    .unwrap();
            }
            Op::Pay { .. } | Op::Overdue { .. } | Op::Expire { .. } => {}
        }
        let paid: Option<u32> = redis::cmd("HGET")
            .arg(&meta)
            .arg("paid")
            .query_async(&mut redis.clone())
            .await
            .unwrap();
        prop_assert_eq!(paid.unwrap_or(0), model.paid);
        let stock_left: u32 = redis::cmd("HGET")
            .arg(&meta)
            .arg("stock_left")
            .query_async(&mut redis.clone())
            .await
            .unwrap();
        prop_assert_eq!(stock_left, model.stock_left);
        let held: HashMap<String, u32> = redis::cmd("HGETALL")
            .arg(keys.drop_holders(&drop_id))
            .query_async(&mut redis.clone())
            .await
            .unwrap();
        let model_held: HashMap<String, u32> = model
            .held
            .iter()
            .map(|(u, n)| (format!("user-{u}"), *n))
            .collect();
        prop_assert_eq!(&held, &model_held);
        let outbox: usize = redis::cmd("XLEN")
            .arg(keys.drop_outbox(&drop_id))
            .query_async(&mut redis.clone())
            .await
            .unwrap();
        prop_assert_eq!(outbox, model.outbox);
    }
    Ok(())
}

/// Checks one order's decision against the model's, and takes a reservation into the model.
fn check_order(
    model: &mut Model,
    order_ids: &mut HashMap<(u8, u8), String>,
    (user, key, qty): (u8, u8, u32),
    decision: &Decision,
) -> Result<(), TestCaseError> {
    let expected = model.order(user, key, qty);
    prop_assert_eq!(
        outcome_of(decision),
        expected,
        "user {} key {} qty {}",
        user,
        key,
        qty
    );
    if let Decision::Fresh {
        answer: Answer::Reserved { order_id, .. },
        ..
    }
    | Decision::Replay(Answer::Reserved { order_id, .. }) = decision
    {
        let first = order_ids
            .entry((user, key))
            .or_insert_with(|| order_id.clone());
        prop_assert_eq!(first, order_id, "a replay names the same order");
    }
    if let Decision::Fresh {
        answer: Answer::Reserved { order_id, .. },
        ..
    } = decision
    {
        model.reservations.push(Reservation {
            order_id: order_id.clone(),
            user,
            qty,
            status: "reserved",
            overdue: false,
        });
    }
    Ok(())
}

/// Shoppers `user-<user>` order `qty` with the keys `key-<key>`, in one script call.
async fn order_batch(
    admission: &Admission,
    drop_id: &str,
    requests: &[(u8, u8, u32)],
) -> Vec<Decision> {
    let requests: Vec<OrderRequest> = requests
        .iter()
        .map(|(user, key, qty)| OrderRequest {
            user_id: format!("user-{user}"),
            key: IdempotencyKey::parse(Some(&format!("key-{key}"))).unwrap(),
            qty: Quantity::parse(i64::from(*qty)).unwrap(),
            // Half the requests traced: both ways of writing the outbox entry are taken.
            trace: (user % 2 == 0)
                .then(|| "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string()),
        })
        .collect();
    admission
        .admit_batch(drop_id, &requests)
        .await
        .unwrap()
        .decisions
}

fn payment_name(payment: &Payment) -> &'static str {
    match payment {
        Payment::Paid { .. } => "paid",
        Payment::Expired => "expired",
        Payment::NotPayable { .. } | Payment::NotFound => "not payable",
    }
}

/// Moves an order's payment deadline into the past, as time passing would.
async fn make_overdue(redis: &RedisConn, keys: &Keys, drop_id: &str, order_id: &str) {
    let orders = keys.drop_orders(drop_id);
    let state: String = redis::cmd("HGET")
        .arg(&orders)
        .arg(order_id)
        .query_async(&mut redis.clone())
        .await
        .unwrap();
    let mut fields: Vec<&str> = state.split('\t').collect();
    fields[3] = "1";
    hset(redis, &orders, &[(order_id, fields.join("\t"))]).await;
}

/// A lottery drop's entry window on Redis and on the engine: the same shoppers and keys
/// get the same answers (one entry per shopper, replays, conflicts, the limit on units).
#[test]
fn lottery_entries_agree_between_redis_and_the_engine() {
    let world = world();
    world.runtime.block_on(async {
        let on_redis = lottery_answers(&world.redis, &world.keys).await;
        let on_engine = lottery_answers(&world.engine, &world.keys).await;
        assert_eq!(on_redis, on_engine);
        assert_eq!(on_redis.1, 2, "one entry per shopper who entered");
        assert!(
            on_redis.0.iter().any(|(_, replay)| *replay),
            "the requests include a replay"
        );
    });
}

/// Each answer of a fixed list of lottery requests (its kind, whether it is a replay), and
/// the outbox length after them.
async fn lottery_answers(redis: &RedisConn, keys: &Keys) -> (Vec<(String, bool)>, usize) {
    let opened = linkdrop_domain::clock::now_ms() - 1000;
    let launched = [
        ("phase", "launched".to_string()),
        ("opens_at_ms", opened.to_string()),
    ];
    let drop_id = new_drop(redis, keys, "lottery", 600_000, &launched).await;
    let admission = Admission::new(redis.clone(), keys.clone());
    let requests = [
        (0, 0, 1),
        (1, 0, 2),
        (0, 1, 2),
        (0, 0, 1),
        (0, 0, 2),
        (2, 0, 3),
        (1, 0, 2),
    ];
    let mut answers = Vec::new();
    for (user, key, qty) in requests {
        let decision = order(&admission, &drop_id, user, key, qty).await;
        answers.push(kind_of(&decision));
    }
    let outbox: usize = redis::cmd("XLEN")
        .arg(keys.drop_outbox(&drop_id))
        .query_async(&mut redis.clone())
        .await
        .unwrap();
    (answers, outbox)
}

/// A decision without its ids and times: what it is, and whether it replays an earlier one.
fn kind_of(decision: &Decision) -> (String, bool) {
    let name = |answer: &Answer| match answer {
        Answer::Reserved { qty, .. } => format!("reserved {qty}"),
        Answer::Entered { qty, .. } => format!("entered {qty}"),
        Answer::LimitReached { .. } => "limit reached".into(),
    };
    match decision {
        Decision::Fresh { answer, .. } => (name(answer), false),
        Decision::Replay(answer) => (name(answer), true),
        Decision::Reject(rejection) => (format!("{rejection:?}"), false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_scripts_agree_with_the_model_on_redis_and_on_the_engine(ops in proptest::collection::vec(op(), 1..40)) {
        let world = world();
        world.runtime.block_on(run(&world.redis, &world.keys, ops.clone()))?;
        world.runtime.block_on(run(&world.engine, &world.keys, ops))?;
    }
}

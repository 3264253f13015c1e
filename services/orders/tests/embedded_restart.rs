//! The embedded backend's drops across a restart: what was acknowledged before the
//! journal was reopened — reservations, payments, expiries, recorded answers — is all
//! there after, and the stock adds up. Needs nothing but a file.

use std::path::PathBuf;

use linkdrop_domain::ids::new_id;
use linkdrop_domain::model::{Fairness, IdempotencyKey, Quantity};
use linkdrop_orders::admission::{Answer, Decision};
use linkdrop_orders::embedded::EmbeddedDrops;
use linkdrop_orders::lifecycle::{Expiry, Payment};
use linkdrop_orders::memory::Terms;
use linkdrop_orders::projection;

fn journal_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("{}.db", new_id("journal")))
}

fn terms(stock: u32, pay_within_ms: i64) -> Terms {
    Terms {
        stock,
        max_per_user: 1,
        pay_within_ms,
        fairness: Fairness::Fcfs,
    }
}

async fn order(drops: &EmbeddedDrops, drop_id: &str, user: &str) -> Decision {
    let key = IdempotencyKey::parse(Some("k")).unwrap();
    drops
        .admit(drop_id, user, &key, Quantity::parse(1).unwrap())
        .await
        .unwrap()
}

fn reserved_id(decision: &Decision) -> String {
    match decision {
        Decision::Fresh {
            answer: Answer::Reserved { order_id, .. },
            ..
        }
        | Decision::Replay(Answer::Reserved { order_id, .. }) => order_id.clone(),
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// A fresh journal with one drop, on sale since a second ago: its path, the drops and the
/// drop's id.
async fn drop_on_sale(stock: u32, pay_within_ms: i64) -> (PathBuf, EmbeddedDrops, String) {
    let path = journal_path();
    let drop_id = new_id("drp");
    let drops = EmbeddedDrops::open(&path).await.unwrap();
    drops
        .create_drop(&drop_id, terms(stock, pay_within_ms))
        .await
        .unwrap();
    drops
        .launch(&drop_id, linkdrop_domain::clock::now_ms() - 1_000)
        .await
        .unwrap();
    (path, drops, drop_id)
}

#[tokio::test]
async fn acknowledged_orders_and_payments_survive_a_restart() {
    let (path, drops, drop_id) = drop_on_sale(3, 600_000).await;
    let mut answers = Vec::new();
    for user in ["u1", "u2", "u3", "u4"] {
        answers.push(order(&drops, &drop_id, user).await);
    }
    assert!(matches!(
        answers[3],
        Decision::Fresh {
            answer: Answer::SoldOut,
            ..
        }
    ));
    let first = reserved_id(&answers[0]);
    let paid = drops.pay(&drop_id, &first, "u1", "pay-1").await.unwrap();
    assert!(matches!(paid, Payment::Paid { .. }));
    let before = drops
        .inspect(&drop_id, |d| {
            (d.stock_left(), d.paid(), d.holders().clone())
        })
        .await
        .unwrap();
    // The process goes away without closing anything.
    drop(drops);

    let reopened = EmbeddedDrops::open(&path).await.unwrap();
    let after = reopened
        .inspect(&drop_id, |d| {
            (d.stock_left(), d.paid(), d.holders().clone())
        })
        .await
        .unwrap();
    assert_eq!(after, before);
    assert_eq!(after.0, 0);
    assert_eq!(after.1, 1);
    // Retries get the answers given before the restart.
    let again = order(&reopened, &drop_id, "u1").await;
    assert_eq!(
        (matches!(again, Decision::Replay(_)), reserved_id(&again)),
        (true, first.clone())
    );
    assert_eq!(
        order(&reopened, &drop_id, "u4").await,
        Decision::Replay(Answer::SoldOut)
    );
    let repaid = reopened.pay(&drop_id, &first, "u1", "pay-2").await.unwrap();
    assert!(
        matches!(repaid, Payment::Paid { ref payment_ref, .. } if payment_ref == "pay-1"),
        "the first payment stands: {repaid:?}"
    );
}

#[tokio::test]
async fn an_expiry_before_a_restart_stays_and_its_units_stay_back_in_stock() {
    // Reservations whose payment deadline is already behind them.
    let (path, drops, drop_id) = drop_on_sale(1, -1_000).await;
    let order_id = reserved_id(&order(&drops, &drop_id, "u1").await);
    assert_eq!(
        drops.expire(&drop_id, &order_id).await.unwrap(),
        Expiry::Expired { stock_left: 1 }
    );
    drop(drops);

    let reopened = EmbeddedDrops::open(&path).await.unwrap();
    assert_eq!(
        reopened
            .inspect(&drop_id, |d| d.stock_left())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        reopened.expire(&drop_id, &order_id).await.unwrap(),
        Expiry::NotReserved
    );
    assert_eq!(
        reopened
            .pay(&drop_id, &order_id, "u1", "late")
            .await
            .unwrap(),
        Payment::Expired
    );
    // The unit that came back sells again.
    assert!(matches!(
        order(&reopened, &drop_id, "u2").await,
        Decision::Fresh {
            answer: Answer::Reserved { .. },
            stock_left: 0,
            ..
        }
    ));
}

#[tokio::test]
async fn the_projection_settles_every_acknowledged_order_once_across_a_restart() {
    let (path, drops, drop_id) = drop_on_sale(3, 600_000).await;
    projection::ensure_tables(drops.db()).await.unwrap();
    let mut acknowledged = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        if let Decision::Fresh {
            answer: Answer::Reserved { order_id, .. },
            ..
        } = order(&drops, &drop_id, user).await
        {
            acknowledged.push(order_id);
        }
    }
    drops
        .pay(&drop_id, &acknowledged[0], "u1", "pay-1")
        .await
        .unwrap();
    // Part of the journal is projected, then the process goes away.
    assert_eq!(projection::step(drops.db(), 2).await.unwrap(), 2);
    drop(drops);

    let reopened = EmbeddedDrops::open(&path).await.unwrap();
    let rest = projection::catch_up(reopened.db()).await.unwrap();
    assert!(rest > 0);
    assert_eq!(projection::catch_up(reopened.db()).await.unwrap(), 0);
    let mut rows: Vec<(String, String)> =
        sqlx::query_as("SELECT order_id, status FROM orders WHERE drop_id = ? ORDER BY order_id")
            .bind(&drop_id)
            .fetch_all(reopened.db())
            .await
            .unwrap();
    rows.sort();
    let mut expected: Vec<(String, String)> = acknowledged
        .iter()
        .map(|id| {
            let status = if *id == acknowledged[0] {
                "paid"
            } else {
                "reserved"
            };
            (id.clone(), status.to_string())
        })
        .collect();
    expected.sort();
    assert_eq!(
        rows, expected,
        "each acknowledged order once, with its state"
    );
}

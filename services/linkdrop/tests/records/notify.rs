//! A transaction wakes the listeners of the channels it asked for once it commits, never
//! when it rolls back, and only on its own database.

use futures::FutureExt;
use linkdrop_records::db::Db;

use crate::support::{PATIENCE, both_record_stores as both};

const CHANNEL: &str = "records_test_channel";

#[tokio::test]
async fn a_transaction_notifies_once_committed_and_never_when_rolled_back_on_both_backends() {
    for db in both().await {
        let mut listener = db.listen(CHANNEL).await.unwrap();
        let mut rolled_back = db.begin().await.unwrap();
        rolled_back.notify_after_commit(CHANNEL);
        drop(rolled_back);
        let mut tx = db.begin().await.unwrap();
        tx.notify_after_commit(CHANNEL);
        // Where the wake-up is in-process it is rung (or not) at once: nothing yet.
        if matches!(db, Db::Sqlite(_)) {
            assert!(
                listener.notified().now_or_never().is_none(),
                "neither the rollback nor a transaction not yet committed notifies"
            );
        }
        tx.commit().await.unwrap();
        tokio::time::timeout(PATIENCE, listener.notified())
            .await
            .unwrap_or_else(|_| panic!("the commit notified the listener ({db:?})"));
    }
}

#[tokio::test]
async fn an_embedded_database_wakes_only_its_own_listeners() {
    let ours = both().await.remove(1);
    let theirs = both().await.remove(1);
    let mut listener = ours.listen(CHANNEL).await.unwrap();
    let mut tx = theirs.begin().await.unwrap();
    tx.notify_after_commit(CHANNEL);
    tx.commit().await.unwrap();
    assert!(
        listener.notified().now_or_never().is_none(),
        "another SQLite file's commit does not wake this one's listeners"
    );
    ours.notify(CHANNEL).await.unwrap();
    assert!(listener.notified().now_or_never().is_some());
}

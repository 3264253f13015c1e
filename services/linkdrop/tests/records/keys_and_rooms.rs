//! API keys and rooms.

use linkdrop_domain::model::Room;
use linkdrop_records::{api_keys, rooms};

use crate::support::both_record_stores as both;

fn key<'a>(id: &'a str, hash: &'a str, role: &'a str) -> api_keys::NewKey<'a> {
    api_keys::NewKey {
        id,
        key_hash: hash,
        role,
        merchant_id: "m_1",
        created_at_ms: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_and_unique_on_both_backends() {
    for db in both().await {
        api_keys::insert(&db, &key("key_1", "hash-1", "host"))
            .await
            .unwrap();
        api_keys::insert(&db, &key("key_2", "hash-2", "merchant"))
            .await
            .unwrap();
        assert_eq!(
            api_keys::find_active(&db, "hash-1").await.unwrap(),
            Some(api_keys::ActiveKey {
                role: "host".into(),
                merchant_id: "m_1".into()
            }),
            "{db:?}"
        );
        assert_eq!(
            api_keys::find_active(&db, "hash-2")
                .await
                .unwrap()
                .map(|k| k.role),
            Some("merchant".into())
        );
        assert_eq!(api_keys::find_active(&db, "nope").await.unwrap(), None);
        assert!(
            api_keys::insert(&db, &key("key_3", "hash-1", "host"))
                .await
                .is_err(),
            "a hash is stored once ({db:?})"
        );
        assert!(
            api_keys::insert(&db, &key("key_4", "hash-4", "admin"))
                .await
                .is_err(),
            "only host and merchant keys ({db:?})"
        );
    }
}

#[tokio::test]
async fn rooms_are_found_and_listed_newest_first_on_both_backends() {
    for db in both().await {
        let room = |id: &str, merchant_id: &str| Room {
            id: id.into(),
            title: format!("Room {id}"),
            merchant_id: merchant_id.into(),
            created_at_ms: 1_700_000_000_000,
        };
        for (id, merchant) in [("room_a", "m_1"), ("room_b", "m_2"), ("room_c", "m_1")] {
            rooms::insert(&db, &room(id, merchant)).await.unwrap();
        }
        assert_eq!(
            rooms::find(&db, "room_b").await.unwrap(),
            Some(room("room_b", "m_2")),
            "{db:?}"
        );
        assert_eq!(rooms::find(&db, "room_x").await.unwrap(), None);
        let ids = |rooms: Vec<Room>| rooms.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(rooms::list(&db, Some("m_1")).await.unwrap()),
            ["room_c", "room_a"]
        );
        assert_eq!(
            ids(rooms::list(&db, None).await.unwrap()),
            ["room_c", "room_b", "room_a"]
        );
        assert!(rooms::insert(&db, &room("room_a", "m_3")).await.is_err());
    }
}

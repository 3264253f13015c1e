//! Identifiers. Every ID is a short type prefix plus a UUIDv7 in lowercase base32
//! (26 characters), so IDs sort by creation time and say what they name (`drp_…` is a drop,
//! `room_…` a room). An order's ID also carries its drop's: `ord_<drop>_<order>`, so that any
//! process can find an order's live state in Redis (which is kept per drop) from the ID
//! alone, before the order has reached PostgreSQL.

/// Lowercase RFC 4648 base32 alphabet without padding (sorts like the bytes it encodes).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
/// Characters of the base32 form of 16 bytes.
const KEY_LEN: usize = 26;

/// Prefixes in use, one per kind of record.
pub mod prefix {
    pub const ROOM: &str = "room";
    pub const DROP: &str = "drp";
    pub const ORDER: &str = "ord";
    pub const API_KEY: &str = "key";
    pub const WEBHOOK_ENDPOINT: &str = "ep";
    pub const SESSION: &str = "ses";
}

/// A new identifier with the given prefix, e.g. `new_id("drp")` → `drp_01j9…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", new_key())
}

/// A new order id of `drop_id`: `ord_<drop key>_<order key>`.
pub fn new_order_id(drop_id: &str) -> String {
    let drop_key = drop_id.strip_prefix("drp_").unwrap_or(drop_id);
    format!("{}_{drop_key}_{}", prefix::ORDER, new_key())
}

/// The drop of an order id made by [`new_order_id`].
pub fn drop_of_order(order_id: &str) -> Option<String> {
    let rest = order_id.strip_prefix("ord_")?;
    let (drop_key, order_key) = rest.split_once('_')?;
    let valid = |k: &str| k.len() == KEY_LEN && k.bytes().all(|b| ALPHABET.contains(&b));
    (valid(drop_key) && valid(order_key)).then(|| format!("{}_{drop_key}", prefix::DROP))
}

fn new_key() -> String {
    let value = u128::from_be_bytes(*uuid::Uuid::now_v7().as_bytes());
    // 26 base32 digits hold 130 bits: the top digit carries the top 3 bits of the 128.
    (0..KEY_LEN)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char)
        .collect()
}

/// True when `id` could be an ID of ours: the checks before an ID is used in a Redis key.
/// Only `[a-z0-9_]`, at most 64 characters.
/// Merchant ids come from other systems (`SHOP-1001`, UUIDs): 1 to 64 visible ASCII
/// characters, as user ids.
pub fn is_valid_merchant_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

pub fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_carry_their_prefix_and_are_well_formed() {
        let a = new_id(prefix::DROP);
        let b = new_id(prefix::DROP);
        assert!(a.starts_with("drp_"));
        assert_eq!(a.len(), 4 + KEY_LEN);
        assert_ne!(a, b);
        assert!(is_well_formed(&a), "{a}");
    }

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<String> = (0..50).map(|_| new_id("x")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn an_order_id_names_its_drop() {
        let drop_id = new_id(prefix::DROP);
        let order_id = new_order_id(&drop_id);
        assert!(is_well_formed(&order_id), "{order_id}");
        assert_eq!(drop_of_order(&order_id), Some(drop_id));
        assert_eq!(drop_of_order("ord_x_y"), None);
        assert_eq!(drop_of_order("drp_abc"), None);
    }

    #[test]
    fn ids_with_braces_or_separators_are_refused() {
        for bad in ["", "drp_{x}", "drp:1", "DRP_1", &"a".repeat(65)] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}

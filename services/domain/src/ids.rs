//! Identifiers. Every ID is a short type prefix plus a UUIDv7 in lowercase hex, so IDs sort
//! by creation time and say what they name (`drp_…` is a drop, `ord_…` an order).

/// A new identifier with the given prefix, e.g. `new_id("ord")` → `ord_0193…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Prefixes in use, one per kind of record.
pub mod prefix {
    pub const ROOM: &str = "room";
    pub const DROP: &str = "drp";
    pub const ORDER: &str = "ord";
    pub const API_KEY: &str = "key";
    pub const WEBHOOK_ENDPOINT: &str = "ep";
    pub const SESSION: &str = "ses";
}

/// True when `id` could be an ID of ours: the checks before an ID is used in a Redis key.
/// Only `[a-z0-9_]`, at most 64 characters.
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
        let a = new_id(prefix::ORDER);
        let b = new_id(prefix::ORDER);
        assert!(a.starts_with("ord_"));
        assert_ne!(a, b);
        assert!(is_well_formed(&a), "{a}");
    }

    #[test]
    fn ids_with_braces_or_separators_are_refused() {
        for bad in ["", "drp_{x}", "drp:1", "DRP_1", &"a".repeat(65)] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}

//! Shopper tokens, minted with the test installation's secret.

use crate::{JWT_SECRET, TestApp};

impl TestApp {
    /// A shopper token for `user_id`.
    pub fn token(&self, user_id: &str) -> String {
        let keys = linkdrop_domain::tokens::TokenKeys::new(&linkdrop_domain::secret::Secret::new(
            JWT_SECRET,
        ));
        keys.mint(user_id, 3600).unwrap()
    }
}

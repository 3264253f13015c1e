//! Reading named fields of a Redis hash in one `HMGET`, parsed where they are used — the
//! shape of every read of a drop's live state.

use crate::backends::RedisConn;

/// Some fields of one hash, as read together.
#[derive(Debug, Clone)]
pub struct HashFields {
    names: &'static [&'static str],
    values: Vec<Option<String>>,
}

impl HashFields {
    /// Reads `names` of the hash at `key` (absent fields and a missing hash read as `None`).
    pub async fn read(
        redis: &RedisConn,
        key: &str,
        names: &'static [&'static str],
    ) -> Result<Self, redis::RedisError> {
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(key)
            .arg(names)
            .query_async(&mut redis.clone())
            .await?;
        Ok(Self { names, values })
    }

    /// The field as text; `None` when absent (or not one of the names read).
    pub fn text(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.values.get(i)?.as_deref()
    }

    /// The field as a whole number; `None` when absent or not a number.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.text(name)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_name_and_parsed() {
        let fields = HashFields {
            names: &["a", "b", "c"],
            values: vec![Some("1".into()), None, Some("x".into())],
        };
        assert_eq!(fields.int("a"), Some(1));
        assert_eq!(fields.text("b"), None);
        assert_eq!(fields.int("c"), None);
        assert_eq!(fields.text("c"), Some("x"));
        assert_eq!(fields.text("zzz"), None);
    }
}

//! Reading a drop's live state: named fields of its meta hash in one `HMGET`, parsed where
//! they are used. A field that is absent reads as `None` where absence means something
//! (not launched yet, not drawn yet) and is an error where it must be there; a field that
//! is present but does not parse is always an error naming the key and the field, never a
//! default ([`BadStoredValue`]).

use linkdrop_domain::drop_meta::{DropMetaField, LivePhase, parse_flag};
use linkdrop_domain::keys::Keys;
use linkdrop_domain::stored::BadStoredValue;

use crate::backends::RedisConn;

/// Some fields of one drop's meta hash, as read together.
#[derive(Debug, Clone)]
pub struct DropMeta {
    key: String,
    fields: &'static [DropMetaField],
    values: Vec<Option<String>>,
}

impl DropMeta {
    /// Reads `fields` of the meta hash of `drop_id` (absent fields and a missing hash read
    /// as `None`).
    pub async fn read(
        redis: &RedisConn,
        keys: &Keys,
        drop_id: &str,
        fields: &'static [DropMetaField],
    ) -> Result<Self, redis::RedisError> {
        let key = keys.drop_meta(drop_id);
        let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(names)
            .query_async(&mut redis.clone())
            .await?;
        Ok(Self {
            key,
            fields,
            values,
        })
    }

    /// The values of `fields` as read from the hash at `key` (tests, and callers that read
    /// the hash some other way).
    pub fn from_values(
        key: impl Into<String>,
        fields: &'static [DropMetaField],
        values: Vec<Option<String>>,
    ) -> Self {
        Self {
            key: key.into(),
            fields,
            values,
        }
    }

    /// The Redis key of the hash.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether none of the fields read is there: the drop has no live state (or lost it).
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// The field as text; `None` when absent.
    ///
    /// # Panics
    /// When `field` was not one of the fields read: a mistake of the caller.
    pub fn text(&self, field: DropMetaField) -> Option<&str> {
        let i = self
            .fields
            .iter()
            .position(|f| *f == field)
            .unwrap_or_else(|| panic!("{field} was not read from {}", self.key));
        self.values.get(i)?.as_deref()
    }

    /// The field as text; an error when absent.
    pub fn require_text(&self, field: DropMetaField) -> Result<&str, BadStoredValue> {
        self.text(field).ok_or_else(|| self.missing(field))
    }

    /// The field parsed by `parse` (which says what it expects in `expected`); `None` when
    /// absent, an error when present but not parsable.
    pub fn parse<T>(
        &self,
        field: DropMetaField,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, BadStoredValue> {
        match self.text(field) {
            None => Ok(None),
            Some(text) => parse(text).map(Some).ok_or_else(|| {
                BadStoredValue::unparsable(&self.key, field.as_str(), expected, text)
            }),
        }
    }

    /// Like [`DropMeta::parse`], and an error when absent.
    pub fn require<T>(
        &self,
        field: DropMetaField,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, BadStoredValue> {
        self.parse(field, expected, parse)?
            .ok_or_else(|| self.missing(field))
    }

    /// The field as a whole number; `None` when absent.
    pub fn int(&self, field: DropMetaField) -> Result<Option<i64>, BadStoredValue> {
        self.parse(field, "a whole number", |t| t.parse().ok())
    }

    /// The field as a whole number; an error when absent.
    pub fn require_int(&self, field: DropMetaField) -> Result<i64, BadStoredValue> {
        self.require(field, "a whole number", |t| t.parse().ok())
    }

    /// A `0`/`1` field; `None` when absent.
    pub fn flag(&self, field: DropMetaField) -> Result<Option<bool>, BadStoredValue> {
        self.parse(field, "0 or 1", parse_flag)
    }

    /// The drop's phase; an error when absent.
    pub fn require_phase(&self) -> Result<LivePhase, BadStoredValue> {
        self.require(
            DropMetaField::Phase,
            "draft, launched or closed",
            LivePhase::parse,
        )
    }

    /// The error of a field that must be there and is not.
    pub fn missing(&self, field: DropMetaField) -> BadStoredValue {
        BadStoredValue::missing(&self.key, field.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DropMetaField::*;

    const READ: &[DropMetaField] = &[Stock, Phase, OpensAtMs, Drawn];

    fn meta(values: [Option<&str>; 4]) -> DropMeta {
        DropMeta::from_values(
            "ld:{d:drp_1}:meta",
            READ,
            values.iter().map(|v| v.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn fields_are_found_by_name_and_parsed() {
        let meta = meta([Some("5"), Some("launched"), None, Some("1")]);
        assert_eq!(meta.int(Stock), Ok(Some(5)));
        assert_eq!(meta.require_phase(), Ok(LivePhase::Launched));
        assert_eq!(meta.int(OpensAtMs), Ok(None));
        assert_eq!(meta.flag(Drawn), Ok(Some(true)));
        assert!(!meta.is_empty());
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_key_and_field() {
        let meta = meta([Some("five"), Some("open"), None, Some("yes")]);
        let err = meta.int(Stock).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.field.as_str()),
            ("ld:{d:drp_1}:meta", "stock")
        );
        assert!(err.problem.contains("\"five\""), "{err}");
        assert_eq!(meta.require_phase().unwrap_err().field, "phase");
        assert_eq!(meta.flag(Drawn).unwrap_err().field, "drawn");
    }

    #[test]
    fn a_required_field_that_is_absent_is_an_error() {
        let meta = meta([None, None, None, None]);
        assert!(meta.is_empty());
        let err = meta.require_int(OpensAtMs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stored value opens_at_ms of ld:{d:drp_1}:meta: missing"
        );
    }

    #[test]
    #[should_panic(expected = "seed was not read")]
    fn asking_for_a_field_not_read_is_a_mistake() {
        let _ = meta([None, None, None, None]).text(Seed);
    }
}

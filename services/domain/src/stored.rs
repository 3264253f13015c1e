//! A value read back from a store — a field of a Redis hash, a column of a record — that is
//! missing or does not parse. It is never replaced by a default: the reader fails with an
//! error that names where the value is, so that the cause can be found (HTTP callers get a
//! bare 500 and the log gets this error).

/// A stored value that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value {field} of {key}: {problem}")]
pub struct BadStoredValue {
    /// Where the value is: a Redis key, or a table and row (`drops drp_…`).
    pub key: String,
    /// The field (of a hash) or column.
    pub field: String,
    /// What is wrong, e.g. `missing` or `not a whole number: "x"`.
    pub problem: String,
}

impl BadStoredValue {
    pub fn new(
        key: impl Into<String>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field is absent although it must be there.
    pub fn missing(key: impl Into<String>, field: impl Into<String>) -> Self {
        Self::new(key, field, "missing")
    }

    /// The field holds `value`, which is not `expected`.
    pub fn unparsable(
        key: impl Into<String>,
        field: impl Into<String>,
        expected: &str,
        value: &str,
    ) -> Self {
        Self::new(key, field, format!("expected {expected}, got {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_key_and_field() {
        let e =
            BadStoredValue::unparsable("ld:{d:drp_1}:meta", "policy", "fcfs or lottery", "dutch");
        assert_eq!(
            e.to_string(),
            r#"stored value policy of ld:{d:drp_1}:meta: expected fcfs or lottery, got "dutch""#
        );
    }
}

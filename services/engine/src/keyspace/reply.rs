//! What a command answers, as Redis would: a value, or an error code and its message.
//! The errors that several commands share are built here, so their bytes are written once.

use redis::Value;

/// A command's answer.
pub type Reply = Result<Value, CmdError>;

/// A command's failure, as Redis would answer it: an error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl CmdError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(super) fn syntax() -> Self {
        Self::new("ERR", "syntax error")
    }

    pub(super) fn wrong_type() -> Self {
        Self::new(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
        )
    }

    pub(super) fn not_integer() -> Self {
        Self::new("ERR", "value is not an integer or out of range")
    }
}

/// The error of a command given the wrong number of arguments.
pub(super) fn arity<T>(name: &str) -> Result<T, CmdError> {
    Err(CmdError::new(
        "ERR",
        format!(
            "wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        ),
    ))
}

pub(super) fn bulk(v: impl Into<Vec<u8>>) -> Value {
    Value::BulkString(v.into())
}

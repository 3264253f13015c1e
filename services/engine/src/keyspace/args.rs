//! A command as it arrives (and as the journal keeps it), and the numbers in its arguments
//! read as Redis reads them.

use super::reply::CmdError;

/// One command or effect: its name and arguments.
pub type Args = Vec<Vec<u8>>;

pub(super) fn int(raw: &[u8]) -> Result<i64, CmdError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(CmdError::not_integer)
}

pub(super) fn float(raw: &[u8]) -> Result<f64, CmdError> {
    match raw {
        b"-inf" => Ok(f64::NEG_INFINITY),
        b"+inf" | b"inf" => Ok(f64::INFINITY),
        _ => std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CmdError::new("ERR", "value is not a valid float")),
    }
}

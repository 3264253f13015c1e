//! How the launcher speaks: progress lines on stdout, and failures that name the
//! component, say what went wrong and show the tail of the logs that tell why.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is not one the launcher knows.
    Usage,
    /// A setting or an argument is wrong; nothing was started.
    Config(String),
    /// A component did not start, stop or answer; `logs` tell why.
    Component {
        component: String,
        message: String,
        logs: Vec<PathBuf>,
    },
}

pub type Result<T> = std::result::Result<T, Failure>;

/// A configuration error naming the setting.
pub fn config(message: impl Into<String>) -> Failure {
    Failure::Config(message.into())
}

/// A component's failure, with the logs to show.
pub fn failed<P: Into<PathBuf>>(
    component: &str,
    message: impl Into<String>,
    logs: impl IntoIterator<Item = P>,
) -> Failure {
    Failure::Component {
        component: component.to_string(),
        message: message.into(),
        logs: logs.into_iter().map(Into::into).collect(),
    }
}

impl Failure {
    /// The failure as `prog` prints it: the message, then the last 40 lines of each log.
    pub fn render(&self, prog: &str) -> String {
        match self {
            Failure::Usage => {
                format!("{prog}: error: unknown command (run it without arguments for the usage)")
            }
            Failure::Config(message) => format!("{prog}: error: {message}"),
            Failure::Component {
                component,
                message,
                logs,
            } => {
                let mut out = format!("{prog}: {component} FAILED: {message}");
                for log in logs {
                    let last = tail(log, 40);
                    if !last.is_empty() {
                        out += &format!("\n----- last 40 lines of {} -----\n", log.display());
                        out += &last;
                    }
                }
                out
            }
        }
    }
}

/// The last `count` lines of a log (empty if it cannot be read).
pub fn tail(log: &Path, count: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("linkdrop-launch"))
    }
}

impl std::error::Error for Failure {}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::Config(error.to_string())
    }
}

/// Progress lines, each starting with the command's name (`stack`, `cluster`, `role`).
#[derive(Clone, Copy, Debug)]
pub struct Voice(pub &'static str);

impl Voice {
    pub fn say(&self, message: impl fmt::Display) {
        println!("{}: {message}", self.0);
    }

    pub fn warn(&self, message: impl fmt::Display) {
        eprintln!("{}: {message}", self.0);
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

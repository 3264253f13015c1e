//! What the stack and the cluster share: their status lines, a crash on demand, and the
//! directory each keeps its state in (deleted only when it bears the topology's marker).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proc;
use crate::report::{Result, Voice, config, failed};

/// `name up port P pid N` or `name down port P -`.
pub fn status_line(name: &str, width: usize, pid: Option<u32>, port: String) -> String {
    match pid {
        Some(pid) => format!("{name:<width$} up    port {port:<5} pid {pid}\n"),
        None => format!("{name:<width$} down  port {port:<5} -\n"),
    }
}

/// SIGKILL, then waits until the process and its children are gone (PostgreSQL's backends
/// leave on their own once the postmaster is dead).
pub fn kill_and_wait(voice: Voice, name: &str, pid: u32, timeout: Duration) -> Result<()> {
    let children = proc::children(pid);
    proc::signal(pid, "KILL");
    if !proc::wait_exit(pid, Duration::from_secs(10)) {
        return Err(failed(
            name,
            format!("pid {pid} survived SIGKILL"),
            Vec::<PathBuf>::new(),
        ));
    }
    for child in children {
        if !proc::wait_exit(child, timeout) {
            return Err(failed(
                name,
                format!(
                    "child pid {child} of {pid} still running {}s after the SIGKILL",
                    timeout.as_secs()
                ),
                Vec::<PathBuf>::new(),
            ));
        }
    }
    voice.say(format!(
        "{name} killed (pid {pid}; its pidfile is left behind, as after a crash)"
    ));
    Ok(())
}

/// Says so and returns true when there is no state directory (nothing can be running).
pub fn nothing_to_stop(voice: Voice, dir: &Path) -> bool {
    if dir.is_dir() {
        return false;
    }
    voice.say(format!(
        "nothing to stop ({} does not exist)",
        dir.display()
    ));
    true
}

/// Refuses a directory without the topology's marker: not one the launcher made.
pub fn marked(dir: &Path, marker: &str) -> Result<()> {
    if dir.join(marker).exists() {
        return Ok(());
    }
    Err(config(format!(
        "{} has no {marker} marker: not deleting it",
        dir.display()
    )))
}

/// Deletes the state directory.
pub fn wipe(voice: Voice, dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir)?;
    voice.say(format!("wiped {}", dir.display()));
    Ok(())
}

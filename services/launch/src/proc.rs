//! Processes the launcher starts and finds again: pidfiles checked against the process's
//! command line (a recycled pid is not ours), starts detached from the caller, signals,
//! waits for an exit, and the ports everything listens on.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::report::{Result, failed};

/// Everything listens here.
pub const HOST: &str = "127.0.0.1";

/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// Whether a process is running (a zombie, exited but not reaped, is not).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// A process's command line, its arguments joined by spaces (with a trailing space).
pub fn command_line(pid: u32) -> Option<String> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
}

/// The pid in `pidfile` if that process runs and its command line passes `is_ours`.
pub fn pid_of(pidfile: &Path, is_ours: impl Fn(&str) -> bool) -> Option<u32> {
    let text = fs::read_to_string(pidfile).ok()?;
    let digits: String = text
        .lines()
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let pid = digits.parse().ok()?;
    (alive(pid) && command_line(pid).is_some_and(|line| is_ours(&line))).then_some(pid)
}

/// Sends `signal` (`TERM`, `KILL`, ...) to `pid`; false if it could not be sent.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether a process is gone: no longer in the process table, or an exited child of ours
/// (a zombie only we would reap). Another parent's zombie still holds its pid, and a
/// server that checks a pidfile (PostgreSQL's postmaster.pid) would take it for running.
pub fn gone(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    match fields.as_slice() {
        [state, ppid, ..] => {
            *state == "X" || (*state == "Z" && *ppid == std::process::id().to_string())
        }
        _ => true,
    }
}

/// Waits until `pid` is gone; false if it still runs after `timeout`.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while !gone(pid) {
        if Instant::now() >= end {
            return false;
        }
        sleep(POLL);
    }
    true
}

/// Waits for `pid` (already sent SIGTERM) to exit; SIGKILL after `timeout`.
pub fn reap(
    voice: crate::report::Voice,
    component: &str,
    pid: u32,
    timeout: Duration,
    log: &Path,
) -> Result<()> {
    if wait_exit(pid, timeout) {
        return Ok(());
    }
    voice.warn(format!(
        "{component} (pid {pid}) still running after {}s: sending SIGKILL",
        timeout.as_secs()
    ));
    signal(pid, "KILL");
    if wait_exit(pid, Duration::from_secs(10)) {
        Ok(())
    } else {
        Err(failed(
            component,
            format!("pid {pid} survived SIGKILL"),
            [log],
        ))
    }
}

/// The direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
        return Vec::new();
    };
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts `program args` in `dir`, in a session of its own (a Ctrl-C in the caller's
/// terminal does not reach it), with exactly `env`, stdin closed and stdout and stderr
/// appended to `out`; writes its pid to `pidfile` and returns it once the program runs.
pub fn launch_detached(
    dir: &Path,
    pidfile: &Path,
    out: &Path,
    program: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> std::io::Result<u32> {
    let _ = fs::remove_file(pidfile);
    let child = detached_command(dir, out, program, args, env)?.spawn()?;
    record_started(pidfile, child.id())?;
    Ok(child.id())
}

/// The command `launch_detached` spawns, for a caller that keeps the child (to wait for its
/// exit status); `record_started` then writes its pidfile.
pub fn detached_command(
    dir: &Path,
    out: &Path,
    program: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> std::io::Result<Command> {
    let log = OpenOptions::new().create(true).append(true).open(out)?;
    // It runs in `dir`: a relative path to the program is the caller's (a bare name is
    // looked up on PATH).
    let program = if program.is_relative() && program.components().count() > 1 {
        std::env::current_dir()?.join(program)
    } else {
        program.to_path_buf()
    };
    // setsid(1) calls setsid() and then execs the program: the pid stays the program's.
    let mut command = Command::new("setsid");
    command
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command)
}

/// Writes the pid of a process just spawned to `pidfile`; returns once setsid has become
/// the program (or the program is gone), so that the pid's command line and session are
/// the program's from here on.
pub fn record_started(pidfile: &Path, pid: u32) -> std::io::Result<()> {
    fs::write(pidfile, format!("{pid}\n"))?;
    let end = Instant::now() + Duration::from_secs(5);
    // (During the exec the command line reads empty for a moment.)
    let became_program = |pid| {
        command_line(pid).is_some_and(|line| !line.is_empty() && !line.starts_with("setsid "))
    };
    while alive(pid) && !became_program(pid) && Instant::now() < end {
        sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Whether something accepts connections on the port.
pub fn port_open(port: u16) -> bool {
    let addr: SocketAddr = format!("{HOST}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// For failure messages: "; 127.0.0.1:P is in use by another process (...)" when the port
/// is taken, else nothing.
pub fn port_hint(port: u16) -> String {
    if !port_open(port) {
        return String::new();
    }
    let owner = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.find("users:")
                .map(|at| text[at..].lines().next().unwrap_or("").to_string())
        })
        .map(|owner| format!(" ({owner})"))
        .unwrap_or_default();
    format!("; {HOST}:{port} is in use by another process{owner}")
}

/// Fails when the port is taken (Kafka takes many seconds to notice it itself).
pub fn need_free_port(component: &str, port: u16, logs: &[&Path]) -> Result<()> {
    if port_open(port) {
        return Err(failed(
            component,
            format!("cannot start{}", port_hint(port)),
            logs.iter().copied(),
        ));
    }
    Ok(())
}

/// Whether `GET http://127.0.0.1:port{path}` answers 200 within two seconds.
pub fn http_ok(port: u16, path: &str) -> bool {
    let addr: SocketAddr = format!("{HOST}:{port}").parse().unwrap();
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200"
}

/// A command's output, or `None` if it did not finish within `timeout` (then it is killed)
/// or could not run. stderr goes where the command says.
pub fn output_within(command: &mut Command, timeout: Duration) -> Option<std::process::Output> {
    let mut child = command.stdout(Stdio::piped()).spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < end => sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return None;
            }
        }
    };
    let stdout = reader.join().unwrap_or_default();
    Some(std::process::Output {
        status,
        stdout,
        stderr: Vec::new(),
    })
}

/// Whether the launcher runs as root (then PostgreSQL's tools run as the postgres user).
pub fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Runs a command with its stdout and stderr appended to `log`; whether it succeeded.
pub fn succeeds_logging_to(command: &mut Command, log: &Path) -> bool {
    command
        .stdout(append_to(log))
        .stderr(append_to(log))
        .status()
        .is_ok_and(|s| s.success())
}

/// A file opened for appending, for a command's stderr.
pub fn append_to(path: &Path) -> Stdio {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The first value after `key` in a config file the launcher wrote (quotes and spaces
/// removed).
pub fn conf_get(file: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(key)
            .map(|value| value.chars().filter(|c| !"'\" ".contains(*c)).collect())
    })
}

/// Random bytes as hex, for generated secrets.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Holds `<dir>/.lock` (one command at a time on a directory) until dropped.
pub fn lock_dir(dir: &Path, timeout: Duration, holder: &str) -> Result<fs::File> {
    fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(".lock"))?;
    let end = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < end => sleep(POLL),
            Err(_) => {
                return Err(crate::report::config(format!(
                    "another {holder} command holds {}",
                    dir.join(".lock").display()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests;

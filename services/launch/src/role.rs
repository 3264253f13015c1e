//! linkdrop processes: `linkdrop <role>` (or `all`, or several roles) started detached with
//! a pidfile and a log in a directory, ready when `GET /readyz` answers 200, stopped with
//! SIGTERM (SIGKILL after the timeout).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::proc::{self, HOST, POLL};
use crate::report::{Result, Voice, config, failed};
use crate::settings::Env;

/// One linkdrop process: `name` names its files in `dir`.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    /// What follows the binary on its command line (`gateway`, `all`, ...).
    pub args: Vec<String>,
    pub port: u16,
    pub dir: PathBuf,
}

impl App {
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join(format!("{}.pid", self.name))
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    pub fn address(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// The pid if the process runs `<binary> <args>`.
    pub fn pid(&self) -> Option<u32> {
        let tail = format!(" {} ", self.args.join(" "));
        proc::pid_of(&self.pidfile(), |line| line.ends_with(&tail))
    }

    /// Starts `bin args` with `env` and its own address (`LINKDROP_HTTP_ADDR`); the log of
    /// the run before (perhaps a crash) is kept as `<name>.log.1`. Returns the pid, or
    /// `None` if it was already running.
    pub fn start(&self, voice: Voice, bin: &Path, env: &Env) -> Result<Option<u32>> {
        if let Some(pid) = self.pid() {
            voice.say(format!(
                "{} already running (pid {pid}, port {})",
                self.name, self.port
            ));
            return Ok(None);
        }
        let spawned = self.command(bin, env)?.spawn();
        let pid = spawned
            .map_err(|e| {
                failed(
                    &self.name,
                    format!("{} did not start: {e}", bin.display()),
                    [self.log()],
                )
            })?
            .id();
        self.record_started(pid)?;
        if !proc::alive(pid) {
            return Err(failed(
                &self.name,
                format!(
                    "the process exited right after its start (port {})",
                    self.port
                ),
                [self.log()],
            ));
        }
        voice.say(format!(
            "{} starting (pid {pid}, port {})",
            self.name, self.port
        ));
        Ok(Some(pid))
    }

    /// The command that starts it (what `start` spawns), for a caller that keeps the child
    /// to learn how it ended; `record_started` then writes its pidfile.
    pub fn command(&self, bin: &Path, env: &Env) -> Result<std::process::Command> {
        fs::create_dir_all(&self.dir)?;
        let log = self.log();
        proc::need_free_port(&self.name, self.port, &[&log])?;
        if fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            fs::rename(&log, self.dir.join(format!("{}.log.1", self.name)))?;
        }
        let _ = fs::remove_file(self.pidfile());
        let mut env = env.clone();
        env.insert("LINKDROP_HTTP_ADDR".into(), self.address());
        Ok(proc::detached_command(
            &self.dir, &log, bin, &self.args, &env,
        )?)
    }

    /// Writes the pidfile of the process `command` spawned.
    pub fn record_started(&self, pid: u32) -> Result<()> {
        Ok(proc::record_started(&self.pidfile(), pid)?)
    }

    /// Waits until it answers `GET /readyz` with 200; `started` is when this command
    /// started it.
    pub fn wait(&self, voice: Voice, started: Option<Instant>, timeout: Duration) -> Result<()> {
        let start = started.unwrap_or_else(Instant::now);
        while !proc::http_ok(self.port, "/readyz") {
            if self.pid().is_none() {
                return Err(failed(
                    &self.name,
                    format!(
                        "the process exited (port {}){}",
                        self.port,
                        proc::port_hint(self.port)
                    ),
                    [self.log()],
                ));
            }
            if start.elapsed() >= timeout {
                return Err(failed(
                    &self.name,
                    format!(
                        "not ready after {}s (GET http://{}/readyz)",
                        timeout.as_secs(),
                        self.address()
                    ),
                    [self.log()],
                ));
            }
            sleep(POLL / 2);
        }
        let pid = self.pid().unwrap_or_default();
        if started.is_some() {
            voice.say(format!(
                "{} ready (pid {pid}, port {}) after {}s",
                self.name,
                self.port,
                start.elapsed().as_secs()
            ));
        } else if start.elapsed() > Duration::from_secs(1) {
            voice.say(format!(
                "{} (already running) ready again after {}s",
                self.name,
                start.elapsed().as_secs()
            ));
        }
        Ok(())
    }
}

/// SIGTERM to all at once, then waits for each (SIGKILL after `timeout`).
pub fn stop_all(voice: Voice, apps: &[App], timeout: Duration) -> Result<()> {
    let stopping: Vec<(&App, u32)> = apps
        .iter()
        .filter_map(|app| app.pid().map(|pid| (app, pid)))
        .inspect(|(_, pid)| {
            proc::signal(*pid, "TERM");
        })
        .collect();
    if stopping.is_empty() {
        voice.say("no linkdrop process running");
    }
    for (app, pid) in stopping {
        proc::reap(voice, &app.name, pid, timeout, &app.log())?;
        let _ = fs::remove_file(app.pidfile());
        voice.say(format!("{} stopped (pid {pid})", app.name));
    }
    Ok(())
}

/// The linkdrop binary: `LINKDROP_BIN` (a path, or a name on PATH), else a release build
/// of the working tree.
pub fn binary(env: &Env, voice: Voice) -> Result<PathBuf> {
    let bin = match crate::settings::get(env, "LINKDROP_BIN") {
        Some(bin) if bin.contains('/') => PathBuf::from(bin),
        Some(bin) => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(bin))
            .find(|path| path.is_file())
            .ok_or_else(|| config(format!("LINKDROP_BIN={bin}: not found")))?,
        None => build_release(env, voice)?,
    };
    let bin = if bin.is_absolute() {
        bin
    } else {
        std::env::current_dir()?.join(bin)
    };
    let executable = fs::metadata(&bin).is_ok_and(|m| {
        m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
    });
    if !executable {
        return Err(config(format!(
            "linkdrop binary {} is not an executable file",
            bin.display()
        )));
    }
    Ok(bin)
}

fn build_release(env: &Env, voice: Voice) -> Result<PathBuf> {
    voice.say("building linkdrop (release) ...");
    let root = crate::install::root();
    let ok = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "linkdrop"])
        .current_dir(&root)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(config("cargo build --release --bin linkdrop failed"));
    }
    let target = crate::settings::get(env, "CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |t| root.join(t));
    Ok(target.join("release/linkdrop"))
}

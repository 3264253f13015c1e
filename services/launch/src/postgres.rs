//! PostgreSQL: a cluster of its own in a directory (initdb once, trust auth on loopback),
//! started and stopped with pg_ctl, ready when pg_isready says so and the database exists.
//! As root, the server's tools run as the `postgres` user (initdb refuses root).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::proc::{self, HOST, POLL};
use crate::report::{Result, Voice, config, failed};

const NAME: &str = "postgres";

/// One PostgreSQL server: its directory (`data/`, `run/`, logs) and port.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    pub database: String,
    pub timeout: Duration,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has initdb.
pub fn bindir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .next()?
                .parse()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn sockdir(&self) -> PathBuf {
        self.dir.join("run")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn conf(&self) -> PathBuf {
        self.data().join("linkdrop.conf")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@{HOST}:{}/{}", self.port, self.database)
    }

    fn bin(&self, tool: &str) -> Result<PathBuf> {
        bindir()
            .map(|bin| bin.join(tool))
            .ok_or_else(|| config("no /usr/lib/postgresql/*/bin/initdb: run scripts/setup"))
    }

    /// A server tool, as the postgres user when running as root, from `/`.
    fn as_pg(&self, tool: &Path) -> Command {
        let mut command = if proc::running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        command.current_dir("/");
        command
    }

    pub fn pid(&self) -> Option<u32> {
        proc::pid_of(&self.data().join("postmaster.pid"), |line| {
            line.contains("postgres")
        })
    }

    pub fn pidfile(&self) -> PathBuf {
        self.data().join("postmaster.pid")
    }

    /// The port the running server was started with.
    pub fn running_port(&self) -> Option<String> {
        proc::conf_get(&self.conf(), "port = ")
    }

    /// Checked before anything starts, so that a bad directory leaves nothing running.
    pub fn preflight(&self) -> Result<()> {
        self.bin("initdb")?;
        fs::create_dir_all(self.sockdir())?;
        if proc::running_as_root() {
            let user = Command::new("id")
                .arg(NAME)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !user.is_ok_and(|s| s.success()) {
                return Err(config(
                    "no 'postgres' system user (is the postgresql package installed? run scripts/setup)",
                ));
            }
            chown(&[&self.dir, &self.sockdir()])?;
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        let writable = self
            .as_pg(Path::new("test"))
            .arg("-w")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !writable {
            return Err(config(format!(
                "the postgres user cannot reach {} (a parent directory is not accessible to it); set LINKDROP_STACK_DIR to a path it can reach, e.g. /var/tmp/linkdrop-stack",
                self.dir.display()
            )));
        }
        let socket = self.sockdir().join(format!(".s.PGSQL.{}", self.port));
        if socket.as_os_str().len() > 100 {
            return Err(config(format!(
                "socket path {} is too long for a unix socket; use a shorter LINKDROP_STACK_DIR",
                socket.display()
            )));
        }
        Ok(())
    }

    fn init(&self, voice: Voice) -> Result<()> {
        let data = self.data();
        if !self.dir.join(".initialized").exists() {
            voice.say(format!("postgres: creating cluster in {}", data.display()));
            let _ = fs::remove_dir_all(&data);
            let log = self.dir.join("initdb.log");
            let ok = proc::succeeds_logging_to(
                self.as_pg(&self.bin("initdb")?).arg("-D").arg(&data).args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]),
                &log,
            );
            if !ok {
                return Err(failed(NAME, "initdb failed", [log]));
            }
            let mut conf = fs::read_to_string(data.join("postgresql.conf"))?;
            conf += "include = 'linkdrop.conf'\n";
            fs::write(data.join("postgresql.conf"), conf)?;
            fs::write(
                data.join("pg_hba.conf"),
                "# Generated by linkdrop-launch: trust for local and 127.0.0.1 connections only.\n\
                 local   all          all                 trust\n\
                 host    all          all   127.0.0.1/32  trust\n\
                 local   replication  all                 trust\n\
                 host    replication  all   127.0.0.1/32  trust\n",
            )?;
            fs::write(self.dir.join(".initialized"), "")?;
        }
        // Written on every start, so that a new port takes effect.
        fs::write(
            self.conf(),
            format!(
                "# Generated by linkdrop-launch on every start; edit the launcher, not this file.\n\
                 listen_addresses = '{HOST}'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 200\n",
                self.port,
                self.sockdir().display()
            ),
        )?;
        if proc::running_as_root() {
            chown(&[&data.join("pg_hba.conf"), &self.conf()])?;
        }
        Ok(())
    }

    /// Starts the server unless it runs; returns once it accepts connections.
    pub fn start(&self, voice: Voice) -> Result<bool> {
        if let Some(pid) = self.pid() {
            let running = self.running_port().unwrap_or_default();
            if running != self.port.to_string() {
                return Err(config(format!(
                    "postgres is already running on port {running}, not {}: stop it first",
                    self.port
                )));
            }
            voice.say(format!(
                "postgres already running (pid {pid}, port {})",
                self.port
            ));
            return Ok(false);
        }
        self.init(voice)?;
        let ctl_log = self.dir.join("pg_ctl.log");
        let _ = fs::remove_file(&ctl_log);
        // pg_ctl -w returns once the server accepts connections, or fails as soon as the
        // postmaster exits (its reason is in the log).
        let ok = proc::succeeds_logging_to(
            self.as_pg(&self.bin("pg_ctl")?)
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", &self.timeout.as_secs().to_string(), "start"]),
            &ctl_log,
        );
        if !ok {
            return Err(failed(
                NAME,
                format!(
                    "pg_ctl start failed (port {}){}",
                    self.port,
                    proc::port_hint(self.port)
                ),
                [self.log(), ctl_log],
            ));
        }
        Ok(true)
    }

    /// Waits until the server answers, then creates the database if it is missing.
    pub fn wait(&self, voice: Voice, started: Option<Instant>) -> Result<()> {
        let start = started.unwrap_or_else(Instant::now);
        loop {
            let ready = Command::new(self.bin("pg_isready")?)
                .args([
                    "-q",
                    "-h",
                    HOST,
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "2",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if self.pid().is_none() {
                return Err(failed(
                    NAME,
                    format!(
                        "the server exited (port {}){}",
                        self.port,
                        proc::port_hint(self.port)
                    ),
                    [self.log()],
                ));
            }
            if start.elapsed() >= self.timeout {
                return Err(failed(
                    NAME,
                    format!(
                        "not ready after {}s (pg_isready -p {})",
                        self.timeout.as_secs(),
                        self.port
                    ),
                    [self.log()],
                ));
            }
            sleep(POLL);
        }
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT 1 FROM pg_database WHERE datname = '{}'",
                self.database
            ),
        )?;
        if exists.trim().is_empty() {
            self.psql("postgres", &format!("CREATE DATABASE {}", self.database))?;
            voice.say(format!("postgres: created database {}", self.database));
        }
        if started.is_some() {
            voice.say(format!(
                "postgres started (pid {}, port {})",
                self.pid().unwrap_or_default(),
                self.port
            ));
        }
        Ok(())
    }

    fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin("psql")?)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "postgres", "-d", database, "-Atc", sql])
            .output()?;
        if !out.status.success() {
            return Err(failed(
                NAME,
                format!(
                    "psql failed: {sql}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                [self.log()],
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn stop(&self, voice: Voice) -> Result<()> {
        let Some(pid) = self.pid() else {
            voice.say("postgres not running");
            return Ok(());
        };
        let ok = self
            .as_pg(&self.bin("pg_ctl")?)
            .arg("-D")
            .arg(self.data())
            .args([
                "-m",
                "fast",
                "-w",
                "-t",
                &self.timeout.as_secs().to_string(),
                "stop",
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(failed(
                NAME,
                format!("pg_ctl stop failed (pid {pid})"),
                [self.log()],
            ));
        }
        voice.say(format!("postgres stopped (pid {pid})"));
        Ok(())
    }
}

fn chown(paths: &[&Path]) -> Result<()> {
    let ok = Command::new("chown")
        .arg("postgres:postgres")
        .args(paths)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(config(format!(
            "could not hand {paths:?} to the postgres user"
        )))
    }
}

//! The single-node stack: Redis (AOF on), PostgreSQL (database `linkdrop`) and one Kafka
//! node with the orders topic, all on loopback, state in one directory (default `.stack`).
//!
//! Settings: `LINKDROP_STACK_DIR`, `LINKDROP_STACK_REDIS_PORT` (16379),
//! `LINKDROP_STACK_REDIS_APPENDFSYNC` (everysec), `LINKDROP_STACK_PG_PORT` (15432),
//! `LINKDROP_STACK_KAFKA_PORT` (19092), `LINKDROP_STACK_KAFKA_CONTROLLER_PORT` (19093),
//! `LINKDROP_STACK_TIMEOUT` (seconds per wait, 90), `LINKDROP_STACK_COMPONENTS` (a subset
//! of `redis postgres kafka`).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kafka::{Kafka, KafkaNode, Tools};
use crate::postgres::Postgres;
use crate::proc::{self, HOST};
use crate::redis::{self, RedisNode};
use crate::report::{Result, Voice, config};
use crate::settings::{self, Env};
use crate::topology::{self, kill_and_wait, status_line};

const VOICE: Voice = Voice("stack");
/// `down --wipe` deletes only a directory that has it.
const MARKER: &str = ".linkdrop-stack";
const COMPONENTS: [&str; 3] = ["redis", "postgres", "kafka"];

/// The stack in one directory.
pub struct Stack {
    pub dir: PathBuf,
    pub redis: RedisNode,
    pub postgres: Postgres,
    pub kafka: Kafka,
    /// The components the commands act on.
    pub components: Vec<&'static str>,
    pub timeout: Duration,
    env: Env,
}

fn components(env: &Env) -> Result<Vec<&'static str>> {
    let listed = settings::get(env, "LINKDROP_STACK_COMPONENTS").unwrap_or("redis postgres kafka");
    let mut chosen = Vec::new();
    for name in listed.split([' ', ',']).filter(|n| !n.is_empty()) {
        let Some(known) = COMPONENTS.iter().find(|c| **c == name) else {
            return Err(config(format!(
                "LINKDROP_STACK_COMPONENTS: unknown component '{name}' (redis, postgres, kafka)"
            )));
        };
        if !chosen.contains(known) {
            chosen.push(*known);
        }
    }
    if chosen.is_empty() {
        return Err(config(
            "LINKDROP_STACK_COMPONENTS selects no component (redis, postgres, kafka)",
        ));
    }
    Ok(chosen)
}

impl Stack {
    /// The stack the environment describes.
    pub fn from_env(env: &Env) -> Result<Stack> {
        let dir = settings::dir(env, "LINKDROP_STACK_DIR", ".stack");
        let timeout = settings::timeout(env, "LINKDROP_STACK_TIMEOUT")?;
        let redis = RedisNode {
            name: "redis".into(),
            dir: dir.join("redis"),
            port: settings::port(env, "LINKDROP_STACK_REDIS_PORT", 16379)?,
            appendfsync: settings::get(env, "LINKDROP_STACK_REDIS_APPENDFSYNC")
                .unwrap_or("everysec")
                .to_string(),
            cluster: false,
            timeout,
        };
        let postgres = Postgres {
            dir: dir.join("postgres"),
            port: settings::port(env, "LINKDROP_STACK_PG_PORT", 15432)?,
            database: "linkdrop".into(),
            timeout,
        };
        let node = KafkaNode {
            name: "kafka".into(),
            dir: dir.join("kafka"),
            id: 1,
            port: settings::port(env, "LINKDROP_STACK_KAFKA_PORT", 19092)?,
            controller_port: settings::port(env, "LINKDROP_STACK_KAFKA_CONTROLLER_PORT", 19093)?,
            heap: ("256m", "1g"),
            timeout,
        };
        let kafka = Kafka {
            tools: Tools {
                log4j: node.dir.join("tools-log4j2.properties"),
                log: node.dir.join("logs/tools.log"),
            },
            cluster_id_file: node.dir.join(".cluster-id"),
            nodes: vec![node],
            replication: 1,
        };
        Ok(Stack {
            dir,
            redis,
            postgres,
            kafka,
            components: components(env)?,
            timeout,
            env: env.clone(),
        })
    }

    fn wants(&self, component: &str) -> bool {
        self.components.contains(&component)
    }

    fn lock(&self) -> Result<fs::File> {
        proc::lock_dir(
            &self.dir,
            self.timeout * 3 + Duration::from_secs(60),
            "scripts/stack up/down",
        )
    }

    /// The connection settings of the chosen components.
    pub fn exports(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.wants("redis") {
            out.push((
                "LINKDROP_REDIS_URL".into(),
                format!("redis://{HOST}:{}", self.redis.port),
            ));
        }
        if self.wants("postgres") {
            out.push(("LINKDROP_DATABASE_URL".into(), self.postgres.url()));
        }
        if self.wants("kafka") {
            out.push(("LINKDROP_KAFKA_BROKERS".into(), self.kafka.brokers()));
        }
        out
    }

    /// Starts what is not running and waits until all is ready, then runs
    /// `scripts/lib/after-stack-up` (the migrations) if PostgreSQL is one of the components.
    pub fn up(&self) -> Result<()> {
        let t0 = Instant::now();
        crate::install::ensure_installed()?;
        let _lock = self.lock()?;
        fs::write(self.dir.join(MARKER), "")?;
        if self.wants("postgres") {
            self.postgres.preflight()?;
        }
        // Kafka's JVM is the slow one: launched first, the others come up while it boots.
        let mut kafka_started = Vec::new();
        if self.wants("kafka") {
            let at = Instant::now();
            kafka_started = self
                .kafka
                .start(VOICE, &[])?
                .into_iter()
                .map(|n| (n, at))
                .collect();
        }
        if self.wants("redis") {
            let at = Instant::now();
            let started = self.redis.start(VOICE)?;
            self.redis.wait(VOICE, started.then_some(at))?;
        }
        if self.wants("postgres") {
            let at = Instant::now();
            let started = self.postgres.start(VOICE)?;
            self.postgres.wait(VOICE, started.then_some(at))?;
        }
        if self.wants("kafka") {
            self.kafka.wait(VOICE, &kafka_started)?;
        }
        self.after_up()?;
        VOICE.say(format!(
            "up in {}s: {}",
            t0.elapsed().as_secs(),
            self.summary()
        ));
        Ok(())
    }

    /// Where the chosen components listen.
    fn summary(&self) -> String {
        let mut ready = Vec::new();
        if self.wants("redis") {
            ready.push(format!("redis {HOST}:{}", self.redis.port));
        }
        if self.wants("postgres") {
            let pg = &self.postgres;
            ready.push(format!("postgres {HOST}:{}/{}", pg.port, pg.database));
        }
        if self.wants("kafka") {
            ready.push(format!("kafka {}", self.kafka.brokers()));
        }
        ready.join(", ")
    }

    /// The hook that applies the database migrations: it needs PostgreSQL.
    fn after_up(&self) -> Result<()> {
        let hook = crate::install::root().join("scripts/lib/after-stack-up");
        if !hook.exists() || !self.wants("postgres") {
            return Ok(());
        }
        VOICE.say("running scripts/lib/after-stack-up");
        let status = Command::new(&hook)
            .env_clear()
            .envs(&self.env)
            .envs(self.exports())
            .env("LINKDROP_STACK_DIR", &self.dir)
            .status()?;
        if !status.success() {
            return Err(config(format!(
                "scripts/lib/after-stack-up failed ({status})"
            )));
        }
        Ok(())
    }

    /// Stops what `up` started; with `wipe`, deletes the directory too.
    pub fn down(&self, wipe: bool) -> Result<()> {
        if topology::nothing_to_stop(VOICE, &self.dir) {
            return Ok(());
        }
        let lock = self.lock()?;
        if self.wants("kafka") {
            self.kafka.stop(VOICE)?;
        }
        if self.wants("postgres") {
            self.postgres.stop(VOICE)?;
        }
        if self.wants("redis") {
            redis::stop_all(VOICE, std::slice::from_ref(&self.redis))?;
        }
        if wipe {
            topology::marked(&self.dir, MARKER)?;
            // Components left out of LINKDROP_STACK_COMPONENTS keep running: not under their feet.
            for (name, running) in self.running() {
                if running && !self.wants(name) {
                    return Err(config(format!(
                        "{name} is still running: not deleting {}",
                        self.dir.display()
                    )));
                }
            }
            drop(lock);
            topology::wipe(VOICE, &self.dir)?;
        }
        Ok(())
    }

    fn running(&self) -> [(&'static str, bool); 3] {
        [
            ("redis", self.redis.pid().is_some()),
            ("postgres", self.postgres.pid().is_some()),
            ("kafka", self.kafka.nodes[0].pid().is_some()),
        ]
    }

    /// One line per component (a running one shows the port it was started with); true if
    /// all are up.
    pub fn status(&self) -> (String, bool) {
        let mut out = String::new();
        let mut all = true;
        for name in &self.components {
            let (pid, port) = match *name {
                "redis" => (self.redis.pid(), self.redis.running_port()),
                "postgres" => (self.postgres.pid(), self.postgres.running_port()),
                _ => (
                    self.kafka.nodes[0].pid(),
                    self.kafka.nodes[0].running_port(),
                ),
            };
            let configured = match *name {
                "redis" => self.redis.port,
                "postgres" => self.postgres.port,
                _ => self.kafka.nodes[0].port,
            };
            out += &status_line(
                name,
                9,
                pid,
                pid.and(port).unwrap_or(configured.to_string()),
            );
            all &= pid.is_some();
        }
        (out, all)
    }

    /// SIGKILLs one component, as a crash would, and waits until it is gone.
    pub fn kill(&self, name: &str) -> Result<()> {
        let pid = match name {
            "redis" => self.redis.pid(),
            "postgres" => self.postgres.pid(),
            "kafka" => self.kafka.nodes[0].pid(),
            _ => {
                return Err(config(format!(
                    "unknown component '{name}' (redis, postgres, kafka)"
                )));
            }
        };
        let pid = pid.ok_or_else(|| config(format!("{name} is not running")))?;
        kill_and_wait(VOICE, name, pid, self.timeout)
    }
}

#[cfg(test)]
mod tests;

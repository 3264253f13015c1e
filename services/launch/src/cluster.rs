//! linkdrop as a cluster on one machine, all on loopback: a three-master Redis Cluster,
//! three Kafka nodes (static quorum, replication factor 3), PostgreSQL and every linkdrop
//! role in processes of its own (three gateways, two orders, two settle, one each of relay,
//! webhooks and control). State in one directory (default `.cluster`), one subdirectory per
//! component. Ports from a base B (`LINKDROP_CLUSTER_PORT_BASE`, 17000): Redis B+1..3 (bus
//! +10000), Kafka B+11..13 (controllers B+21..23), PostgreSQL B+30, gateways B+41..43,
//! orders B+51..52, control B+60, relay B+61, settle B+62..63, webhooks B+64.

mod environment;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kafka::{Kafka, KafkaNode, Tools};
use crate::postgres::Postgres;
use crate::proc::{self, HOST};
use crate::redis::{self, RedisNode};
use crate::report::{Result, Voice, config, failed};
use crate::role::{self, App};
use crate::settings::{self, Env};
use crate::topology::{self, kill_and_wait, status_line};

const VOICE: Voice = Voice("cluster");
/// Holds the port base; `down --wipe` deletes only a directory that has it.
const MARKER: &str = ".linkdrop-cluster";
/// The linkdrop processes: (role, how many, port offset of the first).
const APPS: [(&str, u16, u16); 6] = [
    ("gateway", 3, 41),
    ("orders", 2, 51),
    ("settle", 2, 62),
    ("relay", 1, 61),
    ("webhooks", 1, 64),
    ("control", 1, 60),
];

/// The cluster in one directory.
pub struct Cluster {
    pub dir: PathBuf,
    pub base: u16,
    pub redis: Vec<RedisNode>,
    pub kafka: Kafka,
    pub postgres: Postgres,
    pub apps: Vec<App>,
    pub timeout: Duration,
    env: Env,
}

fn port_base(env: &Env, dir: &Path) -> Result<u16> {
    let recorded = fs::read_to_string(dir.join(MARKER))
        .ok()
        .and_then(|marker| {
            marker
                .lines()
                .find_map(|l| l.strip_prefix("port_base=").map(str::to_string))
        });
    let base = match settings::get(env, "LINKDROP_CLUSTER_PORT_BASE") {
        Some(base) => base.to_string(),
        None => recorded.unwrap_or_else(|| "17000".into()),
    };
    let base: u32 = base.parse().map_err(|_| {
        config(format!(
            "LINKDROP_CLUSTER_PORT_BASE must be a number, got '{base}'"
        ))
    })?;
    if base + 64 + 10000 >= 65536 {
        return Err(config(format!(
            "LINKDROP_CLUSTER_PORT_BASE={base} is too high: the ports go up to B+64 and Redis's cluster bus to B+10003 (B+64+10000 must be below 65536)"
        )));
    }
    // A port the kernel hands out for outgoing connections can be taken between the check
    // and the bind: the cluster bus is better kept below that range.
    let ephemeral_low: u32 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    if base + 10003 >= ephemeral_low {
        VOICE.warn(format!(
            "warning: LINKDROP_CLUSTER_PORT_BASE={base} puts Redis's cluster bus at {}+, inside the ephemeral port range (from {ephemeral_low}): an outgoing connection may take one first",
            base + 10000
        ));
    }
    Ok(base as u16)
}

impl Cluster {
    /// The cluster the environment describes; `env` is also what its processes inherit.
    pub fn from_env(env: &Env) -> Result<Cluster> {
        let dir = settings::dir(env, "LINKDROP_CLUSTER_DIR", ".cluster");
        let base = port_base(env, &dir)?;
        let timeout = settings::timeout(env, "LINKDROP_CLUSTER_TIMEOUT")?;
        let redis = (1..=3)
            .map(|n| RedisNode {
                name: format!("redis-{n}"),
                dir: dir.join(format!("redis-{n}")),
                port: base + n,
                appendfsync: "everysec".into(),
                cluster: true,
                timeout,
            })
            .collect();
        let nodes = (1..=3u16)
            .map(|n| KafkaNode {
                name: format!("kafka-{n}"),
                dir: dir.join(format!("kafka-{n}")),
                id: n.into(),
                port: base + 10 + n,
                controller_port: base + 20 + n,
                heap: ("128m", "512m"),
                timeout,
            })
            .collect();
        let kafka = Kafka {
            nodes,
            tools: Tools {
                log4j: dir.join("kafka-tools/tools-log4j2.properties"),
                log: dir.join("kafka-tools/tools.log"),
            },
            replication: 3,
            cluster_id_file: dir.join("kafka-cluster-id"),
        };
        let postgres = Postgres {
            dir: dir.join("stack/postgres"),
            port: base + 30,
            database: "linkdrop".into(),
            timeout,
        };
        let apps = APPS
            .iter()
            .flat_map(|&(role, count, offset)| (1..=count).map(move |n| (role, n, offset + n - 1)))
            .map(|(role, n, offset)| App {
                name: format!("{role}-{n}"),
                args: vec![role.to_string()],
                port: base + offset,
                dir: dir.join(format!("{role}-{n}")),
            })
            .collect();
        Ok(Cluster {
            dir,
            base,
            redis,
            kafka,
            postgres,
            apps,
            timeout,
            env: env.clone(),
        })
    }

    /// Every component's name, in the order `status` lists them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.redis.iter().map(|r| r.name.clone()).collect();
        names.extend(self.kafka.nodes.iter().map(|k| k.name.clone()));
        names.push("postgres".into());
        names.extend(self.apps.iter().map(|a| a.name.clone()));
        names
    }

    fn unknown(&self, name: &str) -> crate::report::Failure {
        config(format!(
            "unknown component '{name}' (one of: {})",
            self.names().join(" ")
        ))
    }

    /// A component's pid and port.
    fn component(&self, name: &str) -> Result<(Option<u32>, u16)> {
        if let Some(node) = self.redis.iter().find(|r| r.name == name) {
            return Ok((node.pid(), node.port));
        }
        if let Some(node) = self.kafka.node(name) {
            return Ok((node.pid(), node.port));
        }
        if name == "postgres" {
            return Ok((self.postgres.pid(), self.postgres.port));
        }
        let app = self
            .apps
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| self.unknown(name))?;
        Ok((app.pid(), app.port))
    }

    fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    fn addresses(&self, role: &str) -> String {
        let all: Vec<String> = self
            .apps
            .iter()
            .filter(|a| a.args[0] == role)
            .map(App::address)
            .collect();
        all.join(",")
    }

    pub fn redis_url(&self) -> String {
        let all: Vec<String> = self
            .redis
            .iter()
            .map(|r| format!("redis://{HOST}:{}", r.port))
            .collect();
        all.join(",")
    }

    fn lock(&self) -> Result<fs::File> {
        proc::lock_dir(
            &self.dir,
            self.timeout * 6 + Duration::from_secs(120),
            "scripts/cluster",
        )
    }

    /// The marker records the port base: Redis's nodes.conf and Kafka's quorum name their
    /// peers by port, so a cluster cannot move to other ports.
    fn check_marker(&self) -> Result<()> {
        let marker = self.dir.join(MARKER);
        if let Ok(text) = fs::read_to_string(&marker) {
            let recorded = text
                .lines()
                .find_map(|l| l.strip_prefix("port_base="))
                .unwrap_or("?");
            if recorded != self.base.to_string() {
                return Err(config(format!(
                    "{} holds a cluster on LINKDROP_CLUSTER_PORT_BASE={recorded}, not {}: use that, or run scripts/cluster down --wipe first",
                    self.dir.display(),
                    self.base
                )));
            }
            return Ok(());
        }
        let occupied = fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().any(|e| e.file_name() != ".lock"))
            .unwrap_or(false);
        if occupied {
            return Err(config(format!(
                "{} is not empty and has no {MARKER} marker: not using it (set LINKDROP_CLUSTER_DIR)",
                self.dir.display()
            )));
        }
        fs::create_dir_all(&self.dir)?;
        fs::write(marker, format!("port_base={}\n", self.base))?;
        Ok(())
    }

    fn apps_down(&self) -> bool {
        self.apps.iter().any(|a| a.pid().is_none())
    }

    /// Starts whatever is not running and waits until all is ready.
    pub fn up(&self) -> Result<()> {
        let t0 = Instant::now();
        crate::install::ensure_installed()?;
        // Built (or found) before anything starts: a failed build leaves nothing running.
        let bin = if self.apps_down() {
            Some(role::binary(&self.env, VOICE)?)
        } else {
            None
        };
        let _lock = self.lock()?;
        self.check_marker()?;
        // Kafka's JVMs are the slow ones: launched first, the others come up while they boot.
        let at = Instant::now();
        let kafka_started: Vec<(String, Instant)> = self
            .kafka
            .start(VOICE, &[])?
            .into_iter()
            .map(|n| (n, at))
            .collect();
        let mut redis_started = Vec::new();
        for node in &self.redis {
            redis_started.push(node.start(VOICE)?.then(Instant::now));
        }
        for (node, started) in self.redis.iter().zip(redis_started) {
            node.wait(VOICE, started)?;
        }
        redis::form_cluster(VOICE, &self.redis)?;
        redis::wait_cluster(VOICE, &self.redis)?;
        self.postgres_up()?;
        self.kafka.wait(VOICE, &kafka_started)?;
        if let Some(bin) = bin {
            let env = self.process_env()?;
            self.migrate(&bin, &env)?;
            self.start_apps(&bin, &env, &self.apps.iter().collect::<Vec<_>>())?;
        } else {
            for app in &self.apps {
                app.wait(VOICE, None, self.timeout)?;
            }
        }
        VOICE.say(format!(
            "up in {}s ({}):",
            t0.elapsed().as_secs(),
            self.dir.display()
        ));
        print!("{}", self.summary());
        Ok(())
    }

    fn postgres_up(&self) -> Result<()> {
        self.postgres.preflight()?;
        let at = Instant::now();
        let started = self.postgres.start(VOICE)?;
        self.postgres.wait(VOICE, started.then_some(at))
    }

    fn start_apps(&self, bin: &Path, env: &Env, apps: &[&App]) -> Result<()> {
        let mut started = Vec::new();
        for app in apps {
            started.push(
                app.start(VOICE, bin, &self.app_env(app, env))?
                    .map(|_| Instant::now()),
            );
        }
        for (app, at) in apps.iter().zip(started) {
            app.wait(VOICE, at, self.timeout)?;
        }
        Ok(())
    }

    fn migrate(&self, bin: &Path, env: &Env) -> Result<()> {
        VOICE.say(format!("applying migrations ({} migrate)", bin.display()));
        let log = self.dir.join("migrate.log");
        let ok = proc::succeeds_logging_to(
            std::process::Command::new(bin)
                .arg("migrate")
                .current_dir(&self.dir)
                .env_clear()
                .envs(env),
            &log,
        );
        if ok {
            Ok(())
        } else {
            Err(failed(
                "migrate",
                format!("{} migrate failed ({})", bin.display(), self.postgres.url()),
                [log],
            ))
        }
    }

    /// `up NAME...`: starts the named components of an existing cluster that are not
    /// running and waits until each is ready (a Redis node also until the cluster reports
    /// ok), leaving the others alone: a restart after `kill`.
    pub fn up_some(&self, names: &[String]) -> Result<()> {
        if !self.dir.join(MARKER).exists() {
            return Err(config(format!(
                "no cluster in {} yet: run scripts/cluster up first",
                self.dir.display()
            )));
        }
        for name in names {
            self.component(name)?;
        }
        let apps: Vec<&App> = names.iter().filter_map(|n| self.app(n)).collect();
        let bin = if apps.iter().any(|a| a.pid().is_none()) {
            Some(role::binary(&self.env, VOICE)?)
        } else {
            None
        };
        let _lock = self.lock()?;
        self.check_marker()?;
        let kafka_names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| self.kafka.node(n).is_some())
            .collect();
        let at = Instant::now();
        let kafka_started = if kafka_names.is_empty() {
            Vec::new()
        } else {
            self.kafka.start(VOICE, &kafka_names)?
        };
        let mut redis_started = Vec::new();
        for node in self.redis.iter().filter(|r| names.contains(&r.name)) {
            redis_started.push((node, node.start(VOICE)?.then(Instant::now)));
        }
        for (node, started) in redis_started {
            node.wait(VOICE, started)?;
            redis::wait_cluster(VOICE, &self.redis)?;
        }
        if names.iter().any(|n| n == "postgres") {
            self.postgres_up()?;
        }
        for name in &kafka_names {
            let node = self.kafka.node(name).expect("a Kafka node");
            let started = kafka_started.iter().any(|n| n == name).then_some(at);
            self.kafka.await_node(node, started)?;
            VOICE.say(format!(
                "{name} ready (pid {}, port {})",
                node.pid().unwrap_or_default(),
                node.port
            ));
        }
        if let Some(bin) = bin {
            let env = self.process_env()?;
            self.start_apps(&bin, &env, &apps)?;
        } else {
            for app in apps {
                app.wait(VOICE, None, self.timeout)?;
            }
        }
        Ok(())
    }

    /// Stops the linkdrop processes, then Kafka, Redis and PostgreSQL; with `wipe`, deletes
    /// the directory too.
    pub fn down(&self, wipe: bool) -> Result<()> {
        if topology::nothing_to_stop(VOICE, &self.dir) {
            return Ok(());
        }
        let lock = self.lock()?;
        role::stop_all(VOICE, &self.apps, self.timeout)?;
        self.kafka.stop(VOICE)?;
        redis::stop_all(VOICE, &self.redis)?;
        self.postgres.stop(VOICE)?;
        if wipe {
            topology::marked(&self.dir, MARKER)?;
            drop(lock);
            topology::wipe(VOICE, &self.dir)?;
        }
        Ok(())
    }

    /// One line per component; true if all are up.
    pub fn status(&self) -> (String, bool) {
        let mut out = String::new();
        let mut all = true;
        for name in self.names() {
            let (pid, port) = self.component(&name).expect("a known component");
            out += &status_line(&name, 11, pid, port.to_string());
            all &= pid.is_some();
        }
        (out, all)
    }

    /// SIGKILLs one component, as a crash would; `up` (or `up NAME`) starts it again (a
    /// Redis node rejoins from its nodes.conf, a Kafka node with its data and node id).
    pub fn kill(&self, name: &str) -> Result<()> {
        let (pid, _) = self.component(name)?;
        if !self.dir.is_dir() {
            return Err(config(format!(
                "{name} is not running ({} does not exist)",
                self.dir.display()
            )));
        }
        let _lock = self.lock()?;
        let pid = pid.ok_or_else(|| config(format!("{name} is not running")))?;
        kill_and_wait(VOICE, name, pid, self.timeout)
    }

    fn summary(&self) -> String {
        let mut out = format!("  redis     {} (Redis Cluster)\n", self.redis_url());
        out += &format!(
            "  kafka     {} (topic {}, replication factor {})\n",
            self.kafka.brokers(),
            crate::kafka::TOPIC,
            self.kafka.replication
        );
        out += &format!("  postgres  {}\n", self.postgres.url());
        for role in [
            "gateway", "orders", "control", "relay", "settle", "webhooks",
        ] {
            let urls: Vec<String> = self
                .addresses(role)
                .split(',')
                .map(|a| format!(" http://{a}"))
                .collect();
            out += &format!("  {role:<9}{}\n", urls.concat());
        }
        out
    }
}

#[cfg(test)]
mod tests;

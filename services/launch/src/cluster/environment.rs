//! The environment of the cluster's linkdrop processes, later ones winning: secrets
//! generated once into `cluster.env`; defaults; the caller's variables; the cluster's own
//! engines (whatever the caller's environment says: a shell that exported the single-node
//! stack's URLs must not point the cluster at it); each process's own address.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::Cluster;
use crate::report::{Result, config};
use crate::role::App;
use crate::settings::Env;

/// Generated once, like `scripts/run`'s.
const SECRETS: [(&str, &str, usize); 3] = [
    ("LINKDROP_ADMIN_KEY", "admin_", 24),
    ("LINKDROP_JWT_SECRET", "", 32),
    ("LINKDROP_WEBHOOK_SECRET_KEY", "", 32),
];

/// What `env` prints, as the processes were last started with it.
const EXPORTED: [&str; 8] = [
    "LINKDROP_REDIS_URL",
    "LINKDROP_REDIS_CLUSTER",
    "LINKDROP_KAFKA_BROKERS",
    "LINKDROP_KAFKA_REPLICATION",
    "LINKDROP_DATABASE_URL",
    "LINKDROP_ADMIN_KEY",
    "LINKDROP_JWT_SECRET",
    "LINKDROP_WEBHOOK_SECRET_KEY",
];

fn read_pairs(text: &str) -> Env {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Writes `text` readable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    fs::rename(tmp, path)?;
    Ok(())
}

impl Cluster {
    fn secrets_file(&self) -> std::path::PathBuf {
        self.dir.join("cluster.env")
    }

    fn recorded_file(&self) -> std::path::PathBuf {
        self.dir.join("processes.env")
    }

    /// The generated secrets, made the first time.
    fn secrets(&self) -> Result<Env> {
        let mut secrets = read_pairs(&fs::read_to_string(self.secrets_file()).unwrap_or_default());
        let missing = SECRETS
            .iter()
            .any(|(name, _, _)| !secrets.contains_key(*name));
        if missing {
            for (name, prefix, bytes) in SECRETS {
                if !secrets.contains_key(name) {
                    secrets.insert(
                        name.into(),
                        format!("{prefix}{}", crate::proc::random_hex(bytes)?),
                    );
                }
            }
            let text: String = secrets.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            write_private(&self.secrets_file(), &text)?;
        }
        Ok(secrets)
    }

    /// The environment shared by every process; recorded for `env`.
    pub(super) fn process_env(&self) -> Result<Env> {
        let mut env = self.env.clone();
        let defaults = [
            (
                "LINKDROP_KAFKA_REPLICATION",
                self.kafka.replication.to_string(),
            ),
            ("LINKDROP_WEBHOOK_ALLOW_NETS", "127.0.0.0/8".to_string()),
            ("LINKDROP_LOG_FORMAT", "json".to_string()),
        ];
        let secrets = self.secrets()?;
        for (name, value) in defaults
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(secrets)
        {
            if crate::settings::get(&env, &name).is_none() {
                env.insert(name, value);
            }
        }
        env.insert("LINKDROP_REDIS_URL".into(), self.redis_url());
        env.insert("LINKDROP_REDIS_CLUSTER".into(), "true".into());
        env.insert("LINKDROP_KAFKA_BROKERS".into(), self.kafka.brokers());
        env.insert("LINKDROP_DATABASE_URL".into(), self.postgres.url());
        let recorded: String = EXPORTED
            .iter()
            .map(|name| format!("{name}={}\n", env.get(*name).map_or("", String::as_str)))
            .collect();
        write_private(&self.recorded_file(), &recorded)?;
        Ok(env)
    }

    /// One process's environment: the shared one and its own public URL (gateways).
    pub(super) fn app_env(&self, app: &App, shared: &Env) -> Env {
        let mut env = shared.clone();
        if app.args[0] == "gateway" {
            env.insert(
                "LINKDROP_PUBLIC_URL".into(),
                format!("http://{}", app.address()),
            );
        }
        env
    }

    /// The connection settings and secrets as the processes were last started with them,
    /// and where each role listens (`LINKDROP_CLUSTER_GATEWAYS`, `..._ORDERS`,
    /// `..._CONTROL`).
    pub fn exports(&self) -> Result<Vec<(String, String)>> {
        if !self.secrets_file().exists() {
            return Err(config(format!(
                "no cluster in {} yet: run scripts/cluster up first",
                self.dir.display()
            )));
        }
        let recorded = match fs::read_to_string(self.recorded_file()) {
            Ok(text) => read_pairs(&text),
            Err(_) => self.process_env()?,
        };
        let mut out: Vec<(String, String)> = EXPORTED
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    recorded.get(*name).cloned().unwrap_or_default(),
                )
            })
            .collect();
        for (name, role) in [
            ("LINKDROP_CLUSTER_GATEWAYS", "gateway"),
            ("LINKDROP_CLUSTER_ORDERS", "orders"),
            ("LINKDROP_CLUSTER_CONTROL", "control"),
        ] {
            out.push((name.into(), self.addresses(role)));
        }
        Ok(out)
    }
}

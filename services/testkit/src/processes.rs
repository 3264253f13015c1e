//! Real linkdrop processes for the crash tests: started from the built binary, ready when
//! they log that they listen, killed with SIGKILL (by the test, or by themselves at a
//! failpoint), and started again.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::PATIENCE;

/// A running `linkdrop` process.
pub struct Process {
    pub name: String,
    pub addr: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// The `linkdrop` binary cargo built for the integration tests: `CARGO_BIN_EXE_linkdrop`
/// when cargo runs the test, else beside the test binary's directory
/// (`target/<profile>/linkdrop`, the test in `target/<profile>/deps/`).
pub fn linkdrop_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_linkdrop") {
        return path.into();
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    binary
        .ancestors()
        .nth(2)
        .expect("the test binary runs from target/<profile>/deps")
        .join("linkdrop")
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    /// Starts `linkdrop <args>` with `env` (and nothing inherited but PATH and HOME); waits
    /// until it logs that it listens.
    pub async fn start(args: &[&str], env: &BTreeMap<String, String>) -> Process {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(linkdrop_binary());
        command
            .args(args)
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
            .envs(env)
            .env("LINKDROP_HTTP_ADDR", &addr)
            .env("LINKDROP_LOG", "info")
            .env("LINKDROP_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the linkdrop binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if line.contains("linkdrop listening")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let name = args.join(" ");
        let mut process = Process {
            name,
            addr,
            child,
            log,
        };
        if tokio::time::timeout(PATIENCE, ready).await.is_err() {
            process.child.start_kill().ok();
            panic!(
                "linkdrop {} did not start:\n{}",
                process.name,
                process.log_tail()
            );
        }
        process
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        let lines = self.log.lock().unwrap();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the process died of SIGKILL (its failpoint), and says so.
    pub async fn killed_by_failpoint(&mut self) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "linkdrop {} never reached its failpoint:\n{}",
                    self.name,
                    self.log_tail()
                )
            })
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "{} should die of SIGKILL:\n{}",
            self.name,
            self.log_tail()
        );
    }

    /// Kills the process with SIGKILL and waits for it.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// A stack of the test's own (Redis, PostgreSQL, Kafka), for tests that kill a component:
/// the launcher's single-node stack with its own directory and ports.
pub struct PrivateStack {
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl PrivateStack {
    /// Starts (or finds running) the private stack in `target/crash-stack`.
    pub fn up() -> PrivateStack {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("target/crash-stack");
        let own = [
            ("LINKDROP_STACK_DIR", dir.to_str().unwrap()),
            ("LINKDROP_STACK_REDIS_PORT", "26479"),
            ("LINKDROP_STACK_PG_PORT", "25532"),
            ("LINKDROP_STACK_KAFKA_PORT", "29192"),
            ("LINKDROP_STACK_KAFKA_CONTROLLER_PORT", "29193"),
            ("LINKDROP_SKIP_MIGRATE", "1"),
        ];
        let env = std::env::vars()
            .filter(|(k, _)| !k.starts_with("LINKDROP_STACK_"))
            .chain(own.map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let stack = PrivateStack { dir, env };
        stack.restart_stopped();
        stack
    }

    fn launcher(&self) -> linkdrop_launch::Stack {
        linkdrop_launch::Stack::from_env(&self.env)
            .unwrap_or_else(|failure| panic!("{}", failure.render("stack")))
    }

    /// Starts again whatever of the stack is not running.
    pub fn restart_stopped(&self) {
        self.launcher()
            .up()
            .unwrap_or_else(|failure| panic!("{}", failure.render("stack")));
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.launcher().redis.port)
    }

    pub fn kafka_brokers(&self) -> String {
        self.launcher().kafka.brokers()
    }

    /// The PostgreSQL server's URL, without a database.
    pub fn database_server(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}",
            self.launcher().postgres.port
        )
    }

    /// Kills one component (`redis`, `kafka`) with SIGKILL, as a crash would, and waits
    /// until it is gone (so that a restart does not find it running).
    pub fn kill(&self, component: &str) {
        self.launcher()
            .kill(component)
            .unwrap_or_else(|failure| panic!("{}", failure.render("stack")));
    }
}

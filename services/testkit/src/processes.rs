//! Real linkdrop processes for the crash tests: started from the built binary by the
//! launcher (`linkdrop_launch::role`, what `scripts/bench` uses too), ready when `/readyz`
//! answers, killed with SIGKILL (by the test, or by themselves at a failpoint), and started
//! again. Each has a directory of its own under `target/test-processes/`, its log in it.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use linkdrop_launch::report::Voice;
use linkdrop_launch::role::App;
use tokio::process::{Child, Command};

use crate::PATIENCE;

/// A running `linkdrop` process.
pub struct Process {
    pub name: String,
    pub addr: String,
    app: App,
    child: Child,
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

/// A directory of its own for each process of this test binary.
fn process_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-processes")
        .join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
}

const VOICE: Voice = Voice("process");

impl Process {
    /// Starts `linkdrop <args>` with `env` (and nothing inherited but PATH and HOME); waits
    /// until it is ready.
    pub async fn start(args: &[&str], env: &BTreeMap<String, String>) -> Process {
        let app = App {
            name: "linkdrop".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            port: free_port(),
            dir: process_dir(),
        };
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k == "PATH" || k == "HOME")
            .chain(env.clone())
            .chain([
                ("LINKDROP_LOG".to_string(), "info".to_string()),
                ("LINKDROP_LOG_FORMAT".to_string(), "json".to_string()),
            ])
            .collect();
        let command = app
            .command(&linkdrop_binary(), &env)
            .unwrap_or_else(|failure| panic!("{}", failure.render("process")));
        let child = Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .expect("the linkdrop binary starts");
        let started = Instant::now();
        app.record_started(child.id().expect("a running child"))
            .unwrap();
        let mut process = Process {
            name: args.join(" "),
            addr: app.address(),
            app,
            child,
        };
        let waiting = process.app.clone();
        let ready =
            tokio::task::spawn_blocking(move || waiting.wait(VOICE, Some(started), PATIENCE))
                .await
                .unwrap();
        if let Err(failure) = ready {
            process.child.start_kill().ok();
            panic!(
                "linkdrop {} did not start:\n{}",
                process.name,
                failure.render("process")
            );
        }
        process
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        linkdrop_launch::report::tail(&self.app.log(), 30)
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

impl Drop for Process {
    /// Its directory goes with it (the child is killed as its handle drops).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.app.dir);
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

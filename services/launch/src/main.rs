//! `linkdrop-launch stack|cluster|role ...`: run it without arguments for the usage; the
//! library's docs say what each topology is.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use linkdrop_launch::report::{Failure, Voice, config};
use linkdrop_launch::role::{self, App};
use linkdrop_launch::settings;
use linkdrop_launch::{Cluster, Result, Stack};

const USAGE: &str = "usage:
  linkdrop-launch stack up | down [--wipe] | status | env | kill NAME
  linkdrop-launch cluster up [NAME...] | down [--wipe] | status | env | kill NAME
  linkdrop-launch role start|run --dir DIR --name NAME --port PORT [--bin PATH] [--timeout S] -- ARGS...
  linkdrop-launch role stop --dir DIR [--timeout S] NAME...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (topology, command) = match args.as_slice() {
        [topology, command, ..] => (topology.as_str(), command.as_str()),
        _ => return usage(),
    };
    let rest = &args[2..];
    let outcome = match topology {
        "stack" => stack(command, rest),
        "cluster" => cluster(command, rest),
        "role" => role(command, rest),
        _ => return usage(),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Usage) => usage(),
        Err(failure) => {
            eprintln!("{}", failure.render(topology));
            if command == "up" && matches!(failure, Failure::Component { .. }) {
                eprintln!(
                    "{topology}: (components that did start are still running: scripts/{topology} down stops them)"
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn stack(command: &str, rest: &[String]) -> Result<ExitCode> {
    let stack = Stack::from_env(&settings::from_process())?;
    match (command, rest) {
        ("up", []) => stack.up()?,
        ("down", _) => stack.down(wipe(rest, "scripts/stack")?)?,
        ("status", []) => return Ok(status(stack.status())),
        ("env", []) => print_exports(&stack.exports()),
        ("kill", [name]) => stack.kill(name)?,
        _ => return Err(Failure::Usage),
    }
    Ok(ExitCode::SUCCESS)
}

fn cluster(command: &str, rest: &[String]) -> Result<ExitCode> {
    let cluster = Cluster::from_env(&settings::from_process())?;
    match (command, rest) {
        ("up", []) => cluster.up()?,
        ("up", names) => cluster.up_some(names)?,
        ("down", _) => cluster.down(wipe(rest, "scripts/cluster")?)?,
        ("status", []) => return Ok(status(cluster.status())),
        ("env", []) => print_exports(&cluster.exports()?),
        ("kill", [name]) => cluster.kill(name)?,
        ("kill", _) => {
            return Err(config(format!(
                "usage: scripts/cluster kill NAME (one of: {})",
                cluster.names().join(" ")
            )));
        }
        _ => return Err(Failure::Usage),
    }
    Ok(ExitCode::SUCCESS)
}

fn wipe(rest: &[String], script: &str) -> Result<bool> {
    match rest {
        [] => Ok(false),
        [flag] if flag == "--wipe" => Ok(true),
        _ => Err(config(format!("usage: {script} down [--wipe]"))),
    }
}

/// Prints the lines; exit 0 only if everything is up (3 otherwise).
fn status((lines, all_up): (String, bool)) -> ExitCode {
    print!("{lines}");
    if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// `export NAME=VALUE` lines for `eval`.
fn print_exports(exports: &[(String, String)]) {
    for (name, value) in exports {
        println!("{}", settings::export_line(name, value));
    }
}

/// The options of `role` before `--`, and what follows it.
struct RoleOptions {
    dir: Option<PathBuf>,
    name: Option<String>,
    port: Option<u16>,
    bin: Option<PathBuf>,
    timeout: Duration,
    names: Vec<String>,
    args: Vec<String>,
}

fn role_options(rest: &[String]) -> Result<RoleOptions> {
    let mut options = RoleOptions {
        dir: None,
        name: None,
        port: None,
        bin: None,
        timeout: Duration::from_secs(60),
        names: Vec::new(),
        args: Vec::new(),
    };
    let mut items = rest.iter();
    while let Some(item) = items.next() {
        let mut value = |flag: &str| {
            items
                .next()
                .cloned()
                .ok_or_else(|| config(format!("{flag} needs a value")))
        };
        match item.as_str() {
            "--dir" => options.dir = Some(value("--dir")?.into()),
            "--name" => options.name = Some(value("--name")?),
            "--port" => {
                let port = value("--port")?;
                options.port = Some(
                    port.parse()
                        .map_err(|_| config(format!("--port must be a port, got '{port}'")))?,
                );
            }
            "--bin" => options.bin = Some(value("--bin")?.into()),
            "--timeout" => {
                let seconds = value("--timeout")?;
                let seconds: u64 = seconds
                    .parse()
                    .map_err(|_| config(format!("--timeout must be seconds, got '{seconds}'")))?;
                options.timeout = Duration::from_secs(seconds);
            }
            "--" => {
                options.args = items.by_ref().cloned().collect();
            }
            name if !name.starts_with("--") => options.names.push(name.to_string()),
            other => return Err(config(format!("unknown option {other}"))),
        }
    }
    Ok(options)
}

/// `role start`: starts one linkdrop process with the caller's environment, waits until it
/// is ready and prints `pid=P addr=A log=L`. `role run`: the same, then stays until the
/// process exits and exits as it did (128 + the signal that ended it). `role stop`: SIGTERM,
/// then waits.
fn role(command: &str, rest: &[String]) -> Result<ExitCode> {
    let options = role_options(rest)?;
    let dir = options
        .dir
        .clone()
        .ok_or_else(|| config("--dir is required"))?;
    match command {
        "start" | "run" => {
            let timeout = options.timeout;
            let (app, bin) = role_app(options, dir)?;
            let env = settings::from_process();
            if command == "start" {
                start_role(&app, &bin, &env, timeout)?;
            } else {
                return run_role(&app, &bin, &env, timeout);
            }
        }
        "stop" => {
            let apps: Vec<App> = options
                .names
                .iter()
                .map(|name| App {
                    name: name.clone(),
                    args: recorded_args(&dir, name),
                    port: 0,
                    dir: dir.clone(),
                })
                .collect();
            role::stop_all(ROLE, &apps, options.timeout)?;
        }
        _ => return Err(Failure::Usage),
    }
    Ok(ExitCode::SUCCESS)
}

const ROLE: Voice = Voice("role");

/// The process `role start|run` names, and the binary it runs.
fn role_app(options: RoleOptions, dir: PathBuf) -> Result<(App, PathBuf)> {
    let (Some(name), Some(port)) = (options.name, options.port) else {
        return Err(config("role start needs --name and --port"));
    };
    if options.args.is_empty() {
        return Err(config("role start needs the process's arguments after --"));
    }
    let bin = match options.bin {
        Some(bin) => bin,
        None => role::binary(&settings::from_process(), ROLE)?,
    };
    let app = App {
        name,
        args: options.args,
        port,
        dir,
    };
    Ok((app, bin))
}

fn print_started(app: &App, pid: u32) {
    println!(
        "pid={pid} addr={} log={}",
        app.address(),
        app.log().display()
    );
}

fn start_role(
    app: &App,
    bin: &std::path::Path,
    env: &settings::Env,
    timeout: Duration,
) -> Result<()> {
    let at = Instant::now();
    let pid = app.start(ROLE, bin, env)?;
    app.wait(ROLE, pid.map(|_| at), timeout)?;
    let pid = app
        .pid()
        .ok_or_else(|| config(format!("{} is not running", app.name)))?;
    print_started(app, pid);
    Ok(())
}

fn run_role(
    app: &App,
    bin: &std::path::Path,
    env: &settings::Env,
    timeout: Duration,
) -> Result<ExitCode> {
    let at = Instant::now();
    let mut child = app.command(bin, env)?.spawn()?;
    app.record_started(child.id())?;
    if let Err(failure) = app.wait(ROLE, Some(at), timeout) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(failure);
    }
    print_started(app, child.id());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let status = child.wait()?;
    let _ = std::fs::remove_file(app.pidfile());
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    Ok(ExitCode::from(code as u8))
}

/// The arguments a running process was started with (from its command line), so that
/// `stop` needs only its name; none if it is not a linkdrop process.
fn recorded_args(dir: &std::path::Path, name: &str) -> Vec<String> {
    let pidfile = dir.join(format!("{name}.pid"));
    let line = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|pid| pid.trim().parse().ok())
        .and_then(linkdrop_launch::proc::command_line)
        .unwrap_or_default();
    let mut words = line.split_whitespace();
    match words.next() {
        Some(program) if program.ends_with("linkdrop") => words.map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

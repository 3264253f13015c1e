use super::*;
use crate::scratch::Scratch;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;

fn sleeper(scratch: &Scratch, name: &str) -> u32 {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    launch_detached(
        scratch.path(),
        &scratch.path().join(format!("{name}.pid")),
        &scratch.path().join(format!("{name}.out")),
        Path::new("sleep"),
        &["30".to_string()],
        &env,
    )
    .unwrap()
}

#[test]
fn a_detached_process_has_its_own_session_and_its_pidfile() {
    let scratch = Scratch::new("detached");
    let pid = sleeper(&scratch, "s");
    let written = fs::read_to_string(scratch.path().join("s.pid")).unwrap();
    assert_eq!(written.trim(), pid.to_string());
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let session = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(3)
        .unwrap();
    assert_eq!(
        session,
        pid.to_string(),
        "setsid makes it the leader of a session"
    );
    assert!(signal(pid, "KILL"));
    assert!(wait_exit(pid, Duration::from_secs(10)));
}

#[test]
fn a_pidfile_counts_only_for_the_process_it_names() {
    let scratch = Scratch::new("pidof");
    let pid = sleeper(&scratch, "s");
    let pidfile = scratch.path().join("s.pid");
    assert_eq!(
        pid_of(&pidfile, |line| line.starts_with("sleep ")),
        Some(pid)
    );
    // A recycled pid: the command line is another program's.
    assert_eq!(pid_of(&pidfile, |line| line.contains("redis-server")), None);
    assert_eq!(pid_of(&scratch.path().join("none.pid"), |_| true), None);
    signal(pid, "KILL");
    assert!(wait_exit(pid, Duration::from_secs(10)));
    // Killed, not yet reaped by us: a zombie of ours is not running.
    assert_eq!(pid_of(&pidfile, |_| true), None);
}

fn answer_once(status: &'static str) -> u16 {
    let listener = TcpListener::bind((HOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ =
            stream.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
    });
    port
}

#[test]
fn ready_means_an_answer_of_200() {
    assert!(http_ok(answer_once("200 OK"), "/readyz"));
    assert!(!http_ok(answer_once("503 Service Unavailable"), "/readyz"));
    let closed = TcpListener::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(!http_ok(closed, "/readyz"));
}

#[test]
fn a_taken_port_is_named_with_its_owner() {
    let listener = TcpListener::bind((HOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let error = need_free_port("redis", port, &[]).unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "redis FAILED: cannot start; {HOST}:{port} is in use"
        )),
        "{error}"
    );
    // (That a free port passes is not asserted here: the tests beside this one take
    // ephemeral ports too, and one may be this port again as soon as it is free.)
    drop(listener);
}

#[test]
fn one_command_at_a_time_holds_a_directory() {
    let scratch = Scratch::new("lock");
    let held = lock_dir(scratch.path(), Duration::from_secs(1), "scripts/stack").unwrap();
    let error = lock_dir(scratch.path(), Duration::from_millis(300), "scripts/stack")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("another scripts/stack command holds"),
        "{error}"
    );
    drop(held);
    lock_dir(scratch.path(), Duration::from_secs(1), "scripts/stack").unwrap();
}

#[test]
fn a_command_that_overstays_is_killed() {
    let started = Instant::now();
    let out = output_within(Command::new("sleep").arg("30"), Duration::from_millis(300));
    assert!(out.is_none());
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = output_within(Command::new("echo").arg("hi"), Duration::from_secs(10)).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn a_launched_process_is_found_by_its_pidfile_at_once() {
    let scratch = Scratch::new("at-once");
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let mut missed = Vec::new();
    for i in 0..100 {
        let pidfile = scratch.path().join(format!("{i}.pid"));
        let out = scratch.path().join("out");
        let pid = launch_detached(
            scratch.path(),
            &pidfile,
            &out,
            Path::new("sleep"),
            &["5".into()],
            &env,
        )
        .unwrap();
        if pid_of(&pidfile, |line| line.starts_with("sleep ")).is_none() {
            missed.push(command_line(pid));
        }
        signal(pid, "KILL");
    }
    assert!(missed.is_empty(), "not yet the program: {missed:?}");
}

use super::*;
use crate::scratch::{Scratch, env};

#[test]
fn the_defaults_are_the_documented_ports_and_directory() {
    let stack = Stack::from_env(&env(&[])).unwrap();
    assert_eq!(stack.dir, crate::install::root().join(".stack"));
    assert_eq!(
        stack.exports(),
        vec![
            (
                "LINKDROP_REDIS_URL".to_string(),
                "redis://127.0.0.1:16379".to_string()
            ),
            (
                "LINKDROP_DATABASE_URL".to_string(),
                "postgres://postgres@127.0.0.1:15432/linkdrop".to_string()
            ),
            (
                "LINKDROP_KAFKA_BROKERS".to_string(),
                "127.0.0.1:19092".to_string()
            ),
        ]
    );
    assert_eq!(stack.kafka.nodes[0].controller_port, 19093);
    assert_eq!(stack.timeout, Duration::from_secs(90));
}

#[test]
fn the_components_limit_what_is_exported() {
    let stack =
        Stack::from_env(&env(&[("LINKDROP_STACK_COMPONENTS", "kafka, redis,kafka")])).unwrap();
    assert_eq!(stack.components, vec!["kafka", "redis"]);
    let names: Vec<String> = stack.exports().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["LINKDROP_REDIS_URL", "LINKDROP_KAFKA_BROKERS"]);
}

#[test]
fn an_unknown_or_empty_choice_of_components_is_refused() {
    let error = Stack::from_env(&env(&[("LINKDROP_STACK_COMPONENTS", "redis mysql")]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("LINKDROP_STACK_COMPONENTS: unknown component 'mysql'"),
        "{error}"
    );
    let error = Stack::from_env(&env(&[("LINKDROP_STACK_COMPONENTS", " , ")]))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("selects no component"), "{error}");
}

fn stack_in(scratch: &Scratch) -> Stack {
    // Ports nothing listens on: nothing of the real stack is touched.
    Stack::from_env(&env(&[
        (
            "LINKDROP_STACK_DIR",
            scratch.path().join("stack").to_str().unwrap(),
        ),
        ("LINKDROP_STACK_REDIS_PORT", "1"),
        ("LINKDROP_STACK_PG_PORT", "2"),
        ("LINKDROP_STACK_KAFKA_PORT", "3"),
    ]))
    .unwrap()
}

#[test]
fn nothing_running_is_all_down() {
    let scratch = Scratch::new("status");
    let stack = stack_in(&scratch);
    let (lines, all_up) = stack.status();
    assert!(!all_up);
    assert_eq!(
        lines,
        "redis     down  port 1     -\npostgres  down  port 2     -\nkafka     down  port 3     -\n"
    );
    let error = stack.kill("redis").unwrap_err().to_string();
    assert!(error.contains("redis is not running"), "{error}");
}

#[test]
fn wipe_deletes_only_a_directory_the_stack_made() {
    let scratch = Scratch::new("wipe");
    let stack = stack_in(&scratch);
    stack.down(true).unwrap(); // no directory: nothing to stop
    fs::create_dir_all(&stack.dir).unwrap();
    fs::write(stack.dir.join("precious"), "keep").unwrap();
    let error = stack.down(true).unwrap_err().to_string();
    assert!(
        error.contains("has no .linkdrop-stack marker: not deleting it"),
        "{error}"
    );
    assert!(stack.dir.join("precious").exists());
    fs::write(stack.dir.join(MARKER), "").unwrap();
    stack.down(true).unwrap();
    assert!(!stack.dir.exists());
}

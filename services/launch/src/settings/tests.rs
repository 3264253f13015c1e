use super::*;
use crate::scratch::env;

#[test]
fn a_number_that_is_not_one_names_its_variable() {
    let e = env(&[("LINKDROP_STACK_REDIS_PORT", "six")]);
    let error = port(&e, "LINKDROP_STACK_REDIS_PORT", 1)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("LINKDROP_STACK_REDIS_PORT must be a number, got 'six'"),
        "{error}"
    );
    assert_eq!(port(&env(&[]), "LINKDROP_STACK_REDIS_PORT", 7).unwrap(), 7);
    assert_eq!(
        port(&env(&[("P", "")]), "P", 7).unwrap(),
        7,
        "empty is unset"
    );
}

#[test]
fn a_timeout_of_zero_is_refused() {
    let error = timeout(&env(&[("T", "0")]), "T").unwrap_err().to_string();
    assert!(error.contains("T must be above 0"), "{error}");
    assert_eq!(timeout(&env(&[]), "T").unwrap(), Duration::from_secs(90));
}

#[test]
fn a_relative_directory_is_taken_from_the_working_directory() {
    let relative = dir(&env(&[("D", "some/dir")]), "D", ".stack");
    assert_eq!(relative, std::env::current_dir().unwrap().join("some/dir"));
    let default = dir(&env(&[]), "D", ".stack");
    assert_eq!(default, crate::install::root().join(".stack"));
}

#[test]
fn an_export_line_quotes_only_what_needs_it() {
    assert_eq!(
        export_line(
            "LINKDROP_REDIS_URL",
            "redis://127.0.0.1:1,redis://127.0.0.1:2"
        ),
        "export LINKDROP_REDIS_URL=redis://127.0.0.1:1,redis://127.0.0.1:2"
    );
    assert_eq!(export_line("X", "a b"), "export X='a b'");
    // What the shell reads back is the value itself.
    let line = export_line("X", "it's $HOME");
    let out = std::process::Command::new("bash")
        .args(["-c", &format!("{line}; printf %s \"$X\"")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME");
}

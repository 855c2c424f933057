//! The command line as a whole: help and exit-code table, usage errors,
//! completions, namespaces, `mproc ls` and JSON errors.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Ns;
use predicates::prelude::*;

#[test]
fn help_prints_the_exit_code_table() {
    let ns = Ns::new();
    ns.cmd()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit status:"))
        .stdout(predicate::str::contains("66"))
        .stdout(predicate::str::contains("128+N"));
    ns.cmd()
        .args(["lock", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("-E, --conflict-exit-code"))
        .stdout(predicate::str::contains("Exit status:"));
    ns.cmd()
        .args(["queue", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("consume"));
}

#[test]
fn version_succeeds() {
    Ns::new()
        .cmd()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("mproc "));
}

#[test]
fn usage_errors_exit_64() {
    let ns = Ns::new();
    ns.cmd().assert().code(64);
    ns.cmd().arg("frobnicate").assert().code(64);
    ns.cmd()
        .args(["queue", "get"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("NAME"));
    ns.cmd()
        .args(["queue", "get", "q", "-n", "-t", "1"])
        .assert()
        .code(64);
    ns.cmd()
        .args(["queue", "get", "q", "-t", "soon"])
        .assert()
        .code(64);
    ns.cmd()
        .args(["lock", "-E", "600", "x", "true"])
        .assert()
        .code(64);
    // A name that is not a single safe path component.
    ns.cmd()
        .args(["queue", "create", "../evil"])
        .assert()
        .code(64)
        .stderr(predicate::str::starts_with("mproc: "));
    // The lock needs a command.
    ns.cmd()
        .args(["lock", "x"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("a command is required"));
}

#[test]
fn completions_for_every_shell() {
    let ns = Ns::new();
    for (shell, marker) in [
        ("bash", "_mproc"),
        ("zsh", "#compdef mproc"),
        ("fish", "complete -c mproc"),
        ("elvish", "mproc"),
        ("powershell", "mproc"),
    ] {
        ns.cmd()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker));
    }
    ns.cmd().args(["completions", "cmd.exe"]).assert().code(64);
}

#[test]
fn dir_flag_and_env_choose_the_namespace() {
    let a = Ns::new();
    let b = Ns::new();
    a.cmd().args(["queue", "create", "jobs"]).assert().success();
    // MPROC_DIR=a, --dir b: the flag wins.
    a.cmd()
        .arg("--dir")
        .arg(b.dir())
        .args(["queue", "len", "jobs"])
        .assert()
        .code(66)
        .stderr(predicate::str::contains(format!(
            "mproc: queue 'jobs' does not exist (dir {})",
            b.dir().display()
        )));
    a.cmd()
        .args(["queue", "len", "jobs"])
        .assert()
        .success()
        .stdout("0\n");
}

#[test]
fn insecure_namespace_is_permission_denied_77() {
    let ns = Ns::new();
    let open = ns.file("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    ns.cmd()
        .arg("--dir")
        .arg(&open)
        .args(["queue", "create", "q"])
        .assert()
        .code(77)
        .stderr(predicate::str::contains("writable by group or others"));
}

#[test]
fn namespace_that_is_a_file_cannot_be_created_73() {
    let ns = Ns::new();
    let f = ns.file("plain-file");
    std::fs::write(&f, "x").unwrap();
    ns.cmd()
        .arg("--dir")
        .arg(&f)
        .args(["queue", "create", "q"])
        .assert()
        .code(73);
}

#[test]
fn damaged_object_is_65_and_listed_as_unknown() {
    let ns = Ns::new();
    std::fs::write(ns.dir().join("junk"), vec![7u8; 4096]).unwrap();
    ns.cmd()
        .args(["queue", "len", "junk"])
        .assert()
        .code(65)
        .stderr(predicate::str::contains("junk"));
    ns.cmd()
        .args(["lock", "junk", "--", "true"])
        .assert()
        .code(65);
    ns.cmd()
        .arg("ls")
        .assert()
        .success()
        .stdout(predicate::str::contains("junk\t?"));
}

#[test]
fn wrong_kind_is_65() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["lock", "l", "--", "true"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "get", "l"])
        .assert()
        .code(65)
        .stderr("mproc: 'l' is a rwlock, not a queue\n");
    ns.cmd().args(["lock", "q", "--", "true"]).assert().code(65);
    ns.cmd().args(["lock", "status", "q"]).assert().code(65);
    // `queue rm` refuses to remove a lock.
    ns.cmd().args(["queue", "rm", "l"]).assert().code(65);
}

#[test]
fn ls_lists_every_object() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "jobs", "--maxsize", "5"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "put", "jobs", "a", "b"])
        .assert()
        .success();
    ns.cmd()
        .args(["lock", "printer", "--", "true"])
        .assert()
        .success();
    ns.cmd()
        .arg("ls")
        .assert()
        .success()
        .stdout("jobs\tqueue\t2/5\topen\t-\nprinter\trwlock\t-\tfree\t-\n");
    let out = ns.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objs = v["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["name"], "jobs");
    assert_eq!(objs[0]["kind"], "queue");
    assert_eq!(objs[0]["size"], 2);
    assert_eq!(objs[0]["maxsize"], 5);
    assert_eq!(objs[1]["name"], "printer");
    // `mproc lock` makes readers-writer locks (for -s).
    assert_eq!(objs[1]["kind"], "rwlock");
    assert_eq!(objs[1]["held"], false);
}

#[test]
fn json_errors_go_to_stderr() {
    let ns = Ns::new();
    let out = ns
        .cmd()
        .args(["--json", "queue", "get", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(out.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
    assert_eq!(v["error"]["code"], 66);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("queue 'nope' does not exist"));
}

#[test]
fn verbose_logs_go_to_stderr_and_quiet_silences_them() {
    let ns = Ns::new();
    ns.cmd()
        .args(["-v", "lock", "k", "--", "true"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("lock 'k' acquired"));
    ns.cmd()
        .args(["lock", "k", "--", "true"])
        .assert()
        .success()
        .stderr("");
    ns.cmd()
        .env("RUST_LOG", "info")
        .args(["lock", "k", "--", "true"])
        .assert()
        .success()
        .stderr(predicate::str::contains("acquired"));
}

#[test]
fn broken_pipe_is_success() {
    use std::io::Read;
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "big"]).assert().success();
    let input: String = (0..20_000).map(|i| format!("{i:010}\n")).collect();
    ns.cmd()
        .args(["queue", "put", "big", "--lines"])
        .write_stdin(input)
        .assert()
        .success();
    let mut get = ns.spawn(["queue", "get", "big", "--count", "20000", "--lines"].as_slice());
    let mut stdout = get.child.stdout.take().unwrap();
    let mut first = [0u8; 11];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0000000000\n");
    drop(stdout);
    let st = get.wait();
    assert_eq!(st.code(), Some(0), "a closed stdout is not an error");
}

#[test]
fn unexpected_io_failure_is_internal_70() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    // Reading a directory as stdin fails with EISDIR.
    let dir = std::fs::File::open(ns.dir()).unwrap();
    let out = ns
        .std_cmd(&["queue", "put", "q"])
        .stdin(std::process::Stdio::from(dir))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("mproc: stdin: "));
}

#[test]
fn help_hides_empty_env_values_and_dir_is_not_required() {
    let ns = Ns::new();
    let out = ns
        .cmd()
        .env("MPROC_DIR", "")
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("MPROC_DIR=]"), "{help}");
    assert!(help.contains("--dir <DIR>"), "{help}");
    // MPROC_DIR set: a usage error does not show --dir as if it were required.
    let out = ns.cmd().args(["queue", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Usage: mproc queue get"), "{err}");
    assert!(!err.contains("--dir"), "{err}");
}

#[test]
fn durations_take_units() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["queue", "get", "-t", "300ms", "q"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gave up after 0.30s"));
    for d in ["500ms", "2s", "1m", "1.5h", "2", "0.5", "inf"] {
        ns.cmd()
            .args(["queue", "put", "-t", d, "q", "x"])
            .assert()
            .success();
        ns.cmd()
            .args(["lock", "-w", d, "l", "--", "true"])
            .assert()
            .success();
    }
    ns.cmd()
        .args(["queue", "get", "-t", "2x", "q"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("not a duration"));
}

#[test]
fn default_namespace_prefers_xdg_runtime_dir_and_says_what_to_do_when_taken() {
    let run = tempfile::tempdir().unwrap();
    let mproc = || {
        let mut c = assert_cmd::Command::new(common::bin());
        c.env_remove("MPROC_DIR")
            .env_remove("MPROC_URL")
            .env("XDG_RUNTIME_DIR", run.path())
            .timeout(common::WATCHDOG);
        c
    };
    mproc().args(["queue", "create", "q"]).assert().success();
    assert!(run.path().join("mproc").join("q").exists());
    mproc().args(["queue", "rm", "q"]).assert().success();
    // Another user got there first: 77, and the error says what to do.
    let taken = run.path().join("mproc");
    std::os::unix::fs::chown(&taken, Some(65534), Some(65534)).unwrap();
    mproc()
        .args(["queue", "create", "q"])
        .assert()
        .code(77)
        .stderr(predicate::str::contains("MPROC_DIR"));
}

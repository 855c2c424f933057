//! Bad input through the CLI: damaged, foreign, truncated, newer-version
//! and wrong-kind segments exit 65, a missing object 66, a foreign owner 77
//! — each with one clear line on stderr, never a crash or a hang.

mod common;

use std::os::unix::fs::FileExt;
use std::process::Output;

use common::Ns;

fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one line on stderr, got: {err:?}"
    );
    assert!(err.starts_with("mproc: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    err
}

fn run(ns: &Ns, args: &[&str]) -> Output {
    ns.cmd().args(args).output().unwrap()
}

fn patch(ns: &Ns, name: &str, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(ns.dir().join(name))
        .unwrap();
    f.write_all_at(bytes, at).unwrap();
}

fn make_queue(ns: &Ns, name: &str) {
    ns.cmd()
        .args(["queue", "create", name, "--max-bytes", "4096"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "put", name, "hello"])
        .assert()
        .success();
}

/// Every queue command that opens `name`.
const QUEUE_CMDS: [&[&str]; 7] = [
    &["queue", "get", "-n"],
    &["queue", "peek"],
    &["queue", "len"],
    &["queue", "stat"],
    &["queue", "put", "-n", "--", "x"],
    &["queue", "close"],
    &["queue", "purge"],
];

fn queue_cmd<'a>(cmd: &[&'a str], name: &'a str) -> Vec<&'a str> {
    // The name goes right after the subcommand (before `--` for put).
    let mut v: Vec<&str> = cmd[..2].to_vec();
    v.push(name);
    v.extend_from_slice(&cmd[2..]);
    v
}

fn assert_every_command_exits(ns: &Ns, name: &str, code: i32, needle: &str) {
    for cmd in QUEUE_CMDS {
        let args = queue_cmd(cmd, name);
        let out = run(ns, &args);
        let line = one_line(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {line}");
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn missing_objects_exit_66() {
    let ns = Ns::new();
    assert_every_command_exits(&ns, "nope", 66, "does not exist");
    let out = run(&ns, &["lock", "-n", "nope-lock", "--", "true"]);
    // `lock` creates its lock on demand: a missing lock is not an error.
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn garbage_files_exit_65() {
    let ns = Ns::new();
    std::fs::write(ns.dir().join("text"), b"just some text\n").unwrap();
    std::fs::write(ns.dir().join("zeros"), vec![0u8; 2048]).unwrap();
    std::fs::write(ns.dir().join("empty"), b"").unwrap();
    for name in ["text", "zeros", "empty"] {
        assert_every_command_exits(&ns, name, 65, "damaged or not an mproc object");
    }
    let out = run(&ns, &["lock", "-n", "text", "--", "true"]);
    assert_eq!(out.status.code(), Some(65));
    one_line(&out);
}

#[test]
fn truncated_segments_exit_65() {
    let ns = Ns::new();
    make_queue(&ns, "q");
    let bytes = std::fs::read(ns.dir().join("q")).unwrap();
    for cut in [10, 64, 1000, bytes.len() - 1] {
        std::fs::write(ns.dir().join("t"), &bytes[..cut]).unwrap();
        assert_every_command_exits(&ns, "t", 65, "damaged");
    }
}

#[test]
fn newer_layout_version_exits_65() {
    let ns = Ns::new();
    make_queue(&ns, "q");
    patch(&ns, "q", 8, &9u32.to_le_bytes());
    assert_every_command_exits(&ns, "q", 65, "layout version 9");
}

#[test]
fn wrong_kind_exits_65() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "-n", "l", "--", "true"])
        .assert()
        .success();
    // `mproc lock` makes a readers-writer lock.
    assert_every_command_exits(&ns, "l", 65, "is a rwlock, not a queue");
    make_queue(&ns, "q");
    let out = run(&ns, &["lock", "-n", "q", "--", "true"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(one_line(&out).contains("is a queue, not a lock"));
}

#[test]
fn corrupted_queue_state_exits_65() {
    let ns = Ns::new();
    make_queue(&ns, "q");
    // The tail word (offset 192) claims records beyond the ring. Producers
    // read it; consumers find the record the ring holds, then the
    // disagreement once the ring looks empty.
    patch(&ns, "q", 192, &u64::MAX.to_le_bytes());
    let out = run(&ns, &["queue", "get", "q", "-n"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
    for args in [
        &["queue", "put", "q", "more"][..],
        &["queue", "get", "q", "-n"][..],
        &["queue", "peek", "q"][..],
    ] {
        let out = run(&ns, args);
        let line = one_line(&out);
        assert_eq!(out.status.code(), Some(65), "{args:?}: {line}");
        assert!(line.contains("damaged"), "{line}");
    }
    // `len` and `stat` report what the words say, without failing.
    assert!(run(&ns, &["queue", "len", "q"]).status.code().is_some());
}

#[test]
fn a_file_owned_by_another_user_exits_77() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED a_file_owned_by_another_user_exits_77: not root");
        return;
    }
    let ns = Ns::new();
    make_queue(&ns, "q");
    let path = std::ffi::CString::new(ns.dir().join("q").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::lchown(path.as_ptr(), 65534, 65534) }, 0);
    let out = run(&ns, &["queue", "get", "-n", "q"]);
    assert_eq!(out.status.code(), Some(77));
    assert!(one_line(&out).contains("permission denied"));
}

#[test]
fn an_unprivileged_user_is_refused_with_77() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED an_unprivileged_user_is_refused_with_77: not root");
        return;
    }
    // A world-searchable parent holding the victim namespace and a copy of
    // the binary that uid 65534 may run.
    let arena = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        arena.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let exe = arena.path().join("mproc");
    common::copy_bin(&exe);
    let dir = arena.path().join("victim");
    let victim = |args: &[&str]| {
        std::process::Command::new(&exe)
            .args(args)
            .env("MPROC_DIR", &dir)
            .output()
            .unwrap()
    };
    assert!(victim(&["queue", "create", "jobs"]).status.success());
    assert!(victim(&["queue", "put", "jobs", "secret"]).status.success());
    for args in [
        &["queue", "get", "-n", "jobs"][..],
        &["queue", "put", "-n", "jobs", "evil"][..],
        &["queue", "close", "jobs"][..],
        &["queue", "len", "jobs"][..],
        &["lock", "-n", "jobs-lock", "--", "true"][..],
        &["ls"][..],
    ] {
        let out = match std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(args)
            .env_clear()
            .env("MPROC_DIR", &dir)
            .current_dir("/")
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                println!("SKIPPED an_unprivileged_user_is_refused_with_77: setpriv: {e}");
                return;
            }
        };
        let line = one_line(&out);
        assert_eq!(out.status.code(), Some(77), "{args:?}: {line}");
        assert!(line.contains("owned by uid 0"), "{args:?}: {line}");
    }
    // The victim's queue is untouched.
    let out = victim(&["queue", "get", "-n", "jobs"]);
    assert_eq!(out.stdout, b"secret");
    let out = victim(&["queue", "stat", "jobs"]);
    let stat = String::from_utf8_lossy(&out.stdout);
    assert!(
        stat.contains("closed=0") && stat.contains("total_put=1"),
        "{stat}"
    );
}

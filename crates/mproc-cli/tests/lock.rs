//! `mproc lock`: flock(1)-style command wrapping, exit codes, conflicts
//! naming the holder, `status`, serialisation of shell read-modify-write,
//! and a SIGKILLed holder releasing the lock at once.

mod common;

use std::time::{Duration, Instant};

use common::{children_of, dead, Bg, Ns};
use predicates::prelude::*;

/// Starts `mproc lock NAME -- sleep 60` and waits until it holds the lock.
fn hold(ns: &Ns, name: &str, extra: &[&str]) -> Bg {
    let mut args = vec!["lock"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, "--", "sleep", "60"]);
    let holder = ns.spawn(&args);
    let pid = holder.pid();
    ns.wait_until("the holder to take the lock", || {
        let out = ns
            .cmd()
            .args(["--json", "lock", "status", name])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["locks"][0]["holder"]["pid"] == pid
    });
    holder
}

#[test]
fn passes_the_exit_status_through() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "k", "--", "true"])
        .assert()
        .success();
    ns.cmd()
        .args(["lock", "k", "--", "sh", "-c", "exit 7"])
        .assert()
        .code(7);
    ns.cmd()
        .args(["lock", "k", "sh", "-c", "echo out; echo err >&2; exit 3"])
        .assert()
        .code(3)
        .stdout("out\n")
        .stderr("err\n");
    // Killed by a signal: 128 + N.
    ns.cmd()
        .args(["lock", "k", "--", "sh", "-c", "kill -KILL $$"])
        .assert()
        .code(137);
    // Released on every path: a non-blocking take now succeeds.
    ns.cmd()
        .args(["lock", "-n", "k", "--", "true"])
        .assert()
        .success();
}

#[test]
fn shell_string_with_c() {
    let ns = Ns::new();
    ns.cmd()
        .env("SHELL", "/bin/sh")
        .args(["lock", "k", "-c", "echo \"$((6 * 7))\"; exit 4"])
        .assert()
        .code(4)
        .stdout("42\n");
    // -c and a command do not mix.
    ns.cmd()
        .args(["lock", "k", "-c", "true", "--", "true"])
        .assert()
        .code(64);
}

#[test]
fn options_after_the_command_belong_to_it() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "k", "printf", "%s|", "-n", "-E", "5", "--json"])
        .assert()
        .success()
        .stdout("-n|-E|5|--json|");
}

#[test]
fn command_that_cannot_run_is_69() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "k", "--", "/nonexistent/cmd"])
        .assert()
        .code(69)
        .stderr(predicate::str::starts_with(
            "mproc: cannot run '/nonexistent/cmd'",
        ));
    ns.cmd()
        .args(["lock", "-n", "k", "--", "true"])
        .assert()
        .success();
}

#[test]
fn busy_lock_names_the_holder_and_exits_1_or_e() {
    let ns = Ns::new();
    let holder = hold(&ns, "db", &["--tag", "nightly backup"]);
    let pid = holder.pid().to_string();
    ns.cmd()
        .args(["lock", "-n", "db", "--", "echo", "never"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with(format!(
            "mproc: lock 'db' is held by pid {pid} ("
        )))
        .stderr(predicate::str::contains(
            "lock --tag nightly backup db -- sleep 60",
        ))
        .stderr(predicate::str::contains("[nightly backup] for "));
    ns.cmd()
        .args(["lock", "-E", "75", "-n", "db", "--", "true"])
        .assert()
        .code(75);
    ns.cmd()
        .args([
            "lock",
            "--conflict-exit-code",
            "0",
            "-w",
            "0",
            "db",
            "--",
            "true",
        ])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("is held by pid"));
    ns.cmd()
        .args(["-q", "lock", "-n", "db", "--", "true"])
        .assert()
        .code(1)
        .stderr("");
    let start = Instant::now();
    ns.cmd()
        .args(["lock", "-w", "0.3", "db", "--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("(gave up after 0.30s)"));
    assert!(start.elapsed() >= Duration::from_millis(300));
    let out = ns
        .cmd()
        .args(["--json", "lock", "-n", "db", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "busy");
    drop(holder);
}

#[test]
fn status_lists_holder_and_waiters() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "idle", "--", "true"])
        .assert()
        .success();
    let holder = hold(&ns, "db", &[]);
    let waiter = ns.spawn(&["lock", "db", "--", "true"]);
    ns.wait_until("the waiter to register", || {
        let out = ns
            .cmd()
            .args(["--json", "lock", "status", "db"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["locks"][0]["waiters"][0]["pid"] == waiter.pid()
    });
    let out = ns.cmd().args(["lock", "status"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let db: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(db[0], "db");
    assert_eq!(db[1], "held");
    assert_eq!(db[2], holder.pid().to_string());
    assert!(db[4].contains("sleep 60"));
    assert_eq!(db[6], format!("1 ({})", waiter.pid()));
    assert_eq!(lines[1], "idle\tfree\t-\t-\t-\t-\t-\t-");

    let out = ns
        .cmd()
        .args(["--json", "lock", "status", "db"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = &v["locks"][0];
    assert_eq!(l["held"], true);
    assert!(l["holder"]["held_s"].as_f64().unwrap() >= 0.0);
    assert!(l["holder"]["command"]
        .as_str()
        .unwrap()
        .contains("sleep 60"));
    assert!(l["waiters"][0]["command"]
        .as_str()
        .unwrap()
        .contains("lock db"));

    ns.cmd().args(["lock", "status", "nope"]).assert().code(66);
    drop(holder);
    drop(waiter);
}

#[test]
fn concurrent_shell_read_modify_write_counts_exactly() {
    let ns = Ns::new();
    std::fs::write(ns.file("count"), "0\n").unwrap();
    let workers: Vec<Bg> = (0..6)
        .map(|_| {
            ns.sh("i=0; while [ $i -lt 25 ]; do \
                   \"$M\" lock counter -c 'n=$(cat count); sleep 0.001; echo $((n + 1)) > count' \
                   || exit 1; i=$((i + 1)); done")
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().success());
    }
    assert_eq!(
        std::fs::read_to_string(ns.file("count")).unwrap().trim(),
        "150"
    );
}

#[test]
fn sigkilled_holder_releases_to_the_next_waiter_and_its_command_dies() {
    let ns = Ns::new();
    let mut holder = hold(&ns, "k", &[]);
    let mut cmd_pids = Vec::new();
    ns.wait_until("the held command to start", || {
        cmd_pids = children_of(holder.pid());
        !cmd_pids.is_empty()
    });
    let waiter = ns.spawn(&["lock", "k", "--", "echo", "acquired"]);
    ns.wait_until("the waiter to register", || {
        let out = ns
            .cmd()
            .args(["--json", "lock", "status", "k"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["locks"][0]["waiters"][0]["pid"] == waiter.pid()
    });
    let killed = Instant::now();
    holder.signal(libc::SIGKILL);
    let (st, out) = waiter.finish();
    let took = killed.elapsed();
    assert!(st.success());
    assert_eq!(out, b"acquired\n");
    eprintln!("the waiter took the lock {took:?} after the kill");
    holder.wait();
    for pid in cmd_pids {
        ns.wait_until("the held command to die", || dead(pid));
    }
    ns.cmd()
        .args(["lock", "-n", "k", "--", "true"])
        .assert()
        .success();
}

#[test]
fn termination_signals_are_forwarded() {
    let ns = Ns::new();
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        // The command reports the signal it got, then exits with its own code.
        let script = format!(
            "trap 'echo got; exit 9' {}; echo ready; while :; do sleep 0.05; done",
            match sig {
                libc::SIGTERM => "TERM",
                libc::SIGHUP => "HUP",
                _ => "INT",
            }
        );
        let mut c = ns.std_cmd(&["lock", "s", "--", "sh", "-c", &script]);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped());
        common::default_signals(&mut c);
        let mut l = Bg::spawn(&mut c);
        let mut stdout = l.child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        l.signal(sig);
        let st = l.wait();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(rest, "got\n", "signal {sig}");
        assert_eq!(st.code(), Some(9), "signal {sig}: the command's own status");
    }
    // A command that does not handle the signal dies by it: 128 + N.
    let l = hold(&ns, "t", &[]);
    l.signal(libc::SIGTERM);
    let (st, _) = l.finish();
    assert_eq!(st.code(), Some(143));
    ns.cmd()
        .args(["lock", "-n", "t", "--", "true"])
        .assert()
        .success();
}

#[test]
fn a_signal_while_waiting_ends_mproc_by_that_signal() {
    use std::os::unix::process::ExitStatusExt;
    let ns = Ns::new();
    let _holder = hold(&ns, "w", &[]);
    let mut waiter = ns.spawn(&["lock", "w", "--", "echo", "never"]);
    ns.wait_until("the waiter to register", || {
        let out = ns
            .cmd()
            .args(["--json", "lock", "status", "w"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["locks"][0]["waiters"][0]["pid"] == waiter.pid()
    });
    waiter.signal(libc::SIGTERM);
    let st = waiter.wait();
    assert_eq!(st.signal(), Some(libc::SIGTERM));
}

#[test]
fn signals_ignored_at_start_stay_ignored() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let ns = Ns::new();
    let mut c = ns.std_cmd(&[
        "lock",
        "h",
        "--",
        "sh",
        "-c",
        "echo ready; sleep 0.3; echo done",
    ]);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // the async-signal-safe `signal`.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut l = Bg::spawn(&mut c);
    let mut stdout = l.child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    stdout.read_exact(&mut buf).unwrap();
    l.signal(libc::SIGHUP);
    let st = l.wait();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(rest, "done\n");
}

//! flock(1) parity: util-linux's own flock test (`tests/ts/flock/flock`)
//! with a lock name in place of the lock file, every flock letter, `-F`
//! as robust as the forking mode, and the script lock (`--hold` +
//! `unlock`) with a SIGKILLed script.

mod common;

use std::time::{Duration, Instant};

use common::{children_of, dead, Ns};

/// `mproc -v lock OPTS NAME echo MESG` (as util-linux's `do_lock`): its
/// exit code and output (its log is printed, for a failing run).
fn do_lock(ns: &Ns, opts: &[&str], name: &str, mesg: &str) -> (i32, String) {
    let mut args = vec!["-v", "lock"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[name, "echo", mesg]);
    let t = Instant::now();
    let out = ns.cmd().args(&args).output().unwrap();
    eprintln!(
        "{args:?}: {:?} after {:?}\n{}",
        out.status,
        t.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The JSON `lock status` of `name`.
fn status(ns: &Ns, name: &str) -> serde_json::Value {
    let out = ns
        .cmd()
        .args(["--json", "lock", "status", name])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["locks"][0].clone()
}

#[test]
fn util_linux_flock_scenarios_pass_with_a_name() {
    let ns = Ns::new();
    let start = Instant::now();
    // The general lock: a shared holder in the background for 3 s.
    let general = ns.spawn(&[
        "lock",
        "--shared",
        "lockfile",
        "bash",
        "-c",
        "echo 'Locking'; sleep 3; echo 'Unlocking'",
    ]);
    // "the lock should be established when flock has a child"
    ns.wait_until("the shared holder's child", || {
        !children_of(general.pid()).is_empty()
    });
    let mut out = String::new();

    // non-block
    let (rc, o) = do_lock(
        &ns,
        &["--nonblocking", "--conflict-exit-code", "123"],
        "lockfile",
        "You will never see this!",
    );
    assert_eq!(rc, 123, "non-block");
    out += &o;
    // no-fork
    let (rc, o) = do_lock(
        &ns,
        &["--no-fork", "--nonblocking", "--conflict-exit-code", "123"],
        "lockfile",
        "You will never see this!",
    );
    assert_eq!(rc, 123, "no-fork");
    out += &o;
    // shared
    let (rc, o) = do_lock(&ns, &["--shared"], "lockfile", "Have shared lock");
    assert_eq!(rc, 0, "shared");
    out += &o;
    // exclusive
    let (rc, o) = do_lock(
        &ns,
        &["--nb", "--exclusive", "--conflict-exit-code", "123"],
        "lockfile",
        "You will never see this!",
    );
    assert_eq!(rc, 123, "exclusive");
    out += &o;
    // fd: flock's descriptor form has no mproc equivalent; its use (lock
    // the rest of a shell) is `--hold`, which must conflict the same way.
    let hold = ns
        .cmd()
        .args([
            "lock",
            "--hold",
            "--nonblocking",
            "--exclusive",
            "--conflict-exit-code",
            "123",
            "lockfile",
        ])
        .output()
        .unwrap();
    assert_eq!(hold.status.code(), Some(123), "fd (--hold): {hold:?}");
    // The descriptor form itself says what to write instead.
    let fd = ns
        .cmd()
        .args(["lock", "--nonblocking", "--exclusive", "4"])
        .output()
        .unwrap();
    assert_eq!(fd.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&fd.stderr).contains("--hold"));
    assert!(!ns.dir().join("4").exists(), "fd file should not exist");
    // timeout
    let (rc, o) = do_lock(
        &ns,
        &["--timeout", "5", "--conflict-exit-code", "5"],
        "lockfile",
        "After timeout.",
    );
    assert_eq!(rc, 0, "timeout");
    out += &o;
    // time-check: the general lock lasted 3 s; the exclusive waited for it.
    let diff = start.elapsed();
    assert!(
        diff >= Duration::from_millis(2900) && diff <= Duration::from_secs(6),
        "time-check: {diff:?}"
    );
    let (st, general_out) = general.finish();
    assert!(st.success());
    assert_eq!(
        String::from_utf8_lossy(&general_out),
        "Locking\nUnlocking\n"
    );
    assert_eq!(out, "Have shared lock\nAfter timeout.\n");
}

#[test]
fn every_flock_letter() {
    let ns = Ns::new();
    // -s / -x / -e / -n / --nb / -E / -w / -c / -o
    let mut reader = ns.spawn(&["lock", "-s", "k", "--", "sleep", "60"]);
    ns.wait_until("the reader", || status(&ns, "k")["mode"] == "shared");
    for opts in [&["-x", "-n"][..], &["-e", "--nb"], &["-n"], &["-w", "0.2"]] {
        let mut args = vec!["lock"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["-E", "9", "k", "true"]);
        ns.cmd().args(&args).assert().code(9);
    }
    ns.cmd()
        .args(["lock", "-s", "-n", "k", "-c", "exit 4"])
        .assert()
        .code(4);
    ns.cmd()
        .args(["lock", "-s", "-o", "-n", "k", "--", "true"])
        .assert()
        .success();
    // -s and -x together, -F with -o: usage errors.
    ns.cmd()
        .args(["lock", "-s", "-x", "k", "true"])
        .assert()
        .code(64);
    ns.cmd()
        .args(["lock", "-F", "-o", "k", "true"])
        .assert()
        .code(64);
    reader.signal(libc::SIGTERM);
    reader.wait();
    // --verbose: flock's timing report (mproc's global -v).
    let out = ns
        .cmd()
        .args(["--verbose", "lock", "k", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(err.contains("lock 'k' acquired after"), "{err}");
    assert!(err.contains("executing"), "{err}");
    // -u without a --hold holding: says so.
    let out = ns.cmd().args(["lock", "-u", "k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not held"));
    // A path: refused with the name to write instead.
    let out = ns
        .cmd()
        .args(["lock", "/var/lock/app.lock", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mproc lock app.lock -- CMD"));
}

#[test]
fn no_fork_execs_and_holds_until_the_command_ends() {
    let ns = Ns::new();
    // The command is mproc itself (same pid), and its status is mproc's.
    let f = ns.spawn(&[
        "lock",
        "-F",
        "k",
        "--",
        "sh",
        "-c",
        "echo $$; sleep 1; exit 3",
    ]);
    let pid = f.pid();
    ns.wait_until("the -F holder", || status(&ns, "k")["holder"]["pid"] == pid);
    ns.cmd().args(["lock", "-n", "k", "true"]).assert().code(1);
    // A waiter gets it when the command ends, and is told of no dead holder.
    let out = ns
        .cmd()
        .args(["lock", "-w", "10", "k", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("died"),
        "{out:?}"
    );
    let (st, o) = f.finish();
    assert_eq!(st.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o).trim(), pid.to_string());
}

#[test]
fn no_fork_killed_with_sigkill_releases_cleanly() {
    let ns = Ns::new();
    for shared in [false, true] {
        let mut args = vec!["lock", "-F"];
        if shared {
            args.push("-s");
        }
        args.extend_from_slice(&["k", "--", "sleep", "60"]);
        let f = ns.spawn(&args);
        let pid = f.pid();
        ns.wait_until("the -F holder", || {
            let s = status(&ns, "k");
            s["holder"]["pid"] == pid || s["readers"][0]["pid"] == pid
        });
        ns.cmd().args(["lock", "-n", "k", "true"]).assert().code(1);
        f.signal(libc::SIGKILL);
        let t = Instant::now();
        let out = ns
            .cmd()
            .args(["lock", "-w", "10", "k", "true"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drop(f);
    }
}

#[test]
fn script_lock_survives_until_the_script_is_killed() {
    let ns = Ns::new();
    let script = ns.sh("$M lock --hold --pid $$ -n -E 7 job || exit 1; touch started; sleep 60");
    ns.wait_until("the script to hold the lock", || {
        ns.dir().join("started").exists()
    });
    // Held for the script, by a keeper (shown with the script's pid).
    let s = status(&ns, "job");
    assert_eq!(s["mode"], "exclusive");
    let tag = format!("--hold for pid {}", script.pid());
    assert_eq!(s["holder"]["tag"], tag.as_str());
    let keeper = s["holder"]["pid"].as_u64().unwrap() as u32;
    ns.cmd()
        .args(["lock", "-n", "job", "true"])
        .assert()
        .code(1);
    // A second script is refused with -E's code.
    let other = ns
        .cmd()
        .args(["lock", "--hold", "-n", "-E", "7", "job"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(7), "{other:?}");
    // The script is SIGKILLed: the lock comes back at once, cleanly.
    script.signal(libc::SIGKILL);
    let t = Instant::now();
    let out = ns
        .cmd()
        .args(["lock", "-w", "10", "job", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("died"));
    ns.wait_until("the keeper to end", || dead(keeper));
    drop(script);
}

#[test]
fn script_lock_is_released_by_unlock() {
    let ns = Ns::new();
    let out = {
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(
                "$M lock --hold job || exit 1
                 $M lock -n job true 2>/dev/null; echo busy=$?
                 $M unlock job; echo unlock=$?
                 $M lock -n job true; echo free=$?
                 $M lock -s --hold job && $M lock -s --hold job || exit 2
                 $M lock -n -x job true 2>/dev/null; echo busy=$?
                 $M lock -u job; echo unlock=$?
                 $M lock -n job true; echo free=$?
                 $M unlock job 2>/dev/null; echo again=$?",
            )
            .env("M", common::bin())
            .env("MPROC_DIR", ns.dir())
            .env_remove("RUST_LOG");
        c.output().unwrap()
    };
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "busy=1\nunlock=0\nfree=0\nbusy=1\nunlock=0\nfree=0\nagain=1\n"
    );
}

#[test]
fn a_killed_keeper_is_taken_over() {
    let ns = Ns::new();
    let script = ns.sh("$M lock --hold job && touch started; sleep 60");
    ns.wait_until("the hold", || ns.dir().join("started").exists());
    let keeper = status(&ns, "job")["holder"]["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(keeper, libc::SIGKILL) };
    let out = ns
        .cmd()
        .args(["lock", "-w", "10", "job", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("died"));
    drop(script);
}

#[test]
fn status_shows_readers_and_waiting_writers() {
    let ns = Ns::new();
    let _r1 = ns.spawn(&["lock", "-s", "db", "--", "sleep", "60"]);
    let _r2 = ns.spawn(&["lock", "-s", "db", "--", "sleep", "60"]);
    ns.wait_until("two readers", || {
        status(&ns, "db")["readers"].as_array().map(Vec::len) == Some(2)
    });
    let w = ns.spawn(&["lock", "-w", "60", "db", "--", "true"]);
    ns.wait_until("the waiting writer", || {
        status(&ns, "db")["waiters"][0]["pid"] == w.pid()
    });
    // Writers go first: a new reader waits behind the writer.
    let out = ns
        .cmd()
        .args(["lock", "-s", "-n", "db", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("held shared by pid"));
    let out = ns.cmd().args(["lock", "status", "db"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let cols: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(cols[1], "shared");
    assert_eq!(cols[6], format!("1 ({})", w.pid()));
    assert!(cols[7].starts_with("2 ("), "{text}");
    let out = ns.cmd().arg("ls").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("db\trwlock\t-\tshared by 2 ("), "{text}");
}

#[test]
fn a_hold_waits_and_times_out_like_a_lock() {
    let ns = Ns::new();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "$M lock --hold job || exit 1
             $M lock --hold -w 0.5 -E 7 --pid $$ job 2>/dev/null; echo timed_out=$?
             (sleep 0.5; $M unlock --pid $$ job) &
             $M lock --hold -w 10 --pid $$ job; echo waited=$?
             wait
             $M lock -n job true 2>/dev/null; echo busy=$?
             $M unlock job; echo unlock=$?",
        )
        .env("M", common::bin())
        .env("MPROC_DIR", ns.dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "timed_out=7\nwaited=0\nbusy=1\nunlock=0\n",
        "{out:?}"
    );
}

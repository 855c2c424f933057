//! `mproc queue consume`: one command per message, N workers, until the
//! queue is closed and drained; failures are reported and set the status.

mod common;

use std::collections::BTreeSet;

use common::Ns;
use predicates::prelude::*;

/// Creates queue `q` holding `msgs`, closed.
fn closed_queue(ns: &Ns, msgs: &[String]) {
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    let input: String = msgs.iter().map(|m| format!("{m}\n")).collect();
    ns.cmd()
        .args(["queue", "put", "q", "--lines"])
        .write_stdin(input)
        .assert()
        .success();
    ns.cmd().args(["queue", "close", "q"]).assert().success();
}

#[test]
fn every_message_is_handled_once_by_parallel_workers() {
    let ns = Ns::new();
    let msgs: Vec<String> = (0..300).map(|i| format!("job-{i}")).collect();
    closed_queue(&ns, &msgs);
    ns.cmd()
        .current_dir(ns.dir())
        .args(["queue", "consume", "-j", "3", "q", "--"])
        .args([
            "sh",
            "-c",
            "{ cat; echo \" $MPROC_QUEUE\"; } >> \"out.$MPROC_WORKER\"",
        ])
        .assert()
        .success()
        .stdout("");
    let mut got = Vec::new();
    let mut workers_used = 0;
    for w in 0..3 {
        if let Ok(text) = std::fs::read_to_string(ns.file(&format!("out.{w}"))) {
            workers_used += 1;
            got.extend(text.lines().map(str::to_string));
        }
    }
    assert!(workers_used >= 1);
    let expected: BTreeSet<String> = msgs.iter().map(|m| format!("{m} q")).collect();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), 300, "each message exactly once");
    assert_eq!(unique, expected);
    ns.cmd().args(["queue", "len", "q"]).assert().stdout("0\n");
}

#[test]
fn consume_waits_for_messages_until_close() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    let out = ns.file("seen");
    // One append per message: a single write, whole even with two workers.
    let script = format!("m=$(cat); echo \"$m\" >> {}", out.display());
    let consumer = ns.spawn(&[
        "queue", "consume", "-j", "2", "q", "--", "sh", "-c", &script,
    ]);
    ns.wait_until("the workers to wait", || {
        ns.stat_of("q", "waiting_get") == 2
    });
    ns.cmd()
        .args(["queue", "put", "q", "a", "b", "c"])
        .assert()
        .success();
    ns.cmd().args(["queue", "close", "q"]).assert().success();
    let (st, _) = consumer.finish();
    assert!(st.success());
    let seen: BTreeSet<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        seen,
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn a_failing_command_is_reported_and_sets_the_status() {
    let ns = Ns::new();
    closed_queue(&ns, &["ok1".into(), "bad".into(), "ok2".into()]);
    ns.cmd()
        .args(["queue", "consume", "q", "--", "sh", "-c"])
        .arg("read m; [ \"$m\" != bad ] || exit 7")
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "failed with exit status 7 on message 2",
        ))
        .stderr(predicate::str::contains("1 of 3 command(s) failed"));
    ns.cmd().args(["queue", "len", "q"]).assert().stdout("0\n");
}

#[test]
fn a_command_killed_by_a_signal_gives_128_plus_n() {
    let ns = Ns::new();
    closed_queue(&ns, &["x".into()]);
    ns.cmd()
        .args(["queue", "consume", "q", "--", "sh", "-c", "kill -TERM $$"])
        .assert()
        .code(128 + 15)
        .stderr(predicate::str::contains("signal 15"));
}

#[test]
fn halt_stops_after_the_first_failure() {
    let ns = Ns::new();
    closed_queue(&ns, &["1".into(), "2".into(), "3".into(), "4".into()]);
    ns.cmd()
        .args(["queue", "consume", "--halt", "q", "--", "sh", "-c"])
        .arg("read m; [ \"$m\" != 2 ]")
        .assert()
        .code(1);
    ns.cmd().args(["queue", "len", "q"]).assert().stdout("2\n");
}

#[test]
fn a_command_that_cannot_run_is_69_and_takes_nothing() {
    let ns = Ns::new();
    closed_queue(&ns, &["x".into()]);
    ns.cmd()
        .args(["queue", "consume", "q", "--", "/nonexistent/program"])
        .assert()
        .code(69)
        .stderr(predicate::str::contains(
            "cannot run '/nonexistent/program'",
        ));
    ns.cmd()
        .args(["queue", "consume", "q", "--", "no-such-command-anywhere"])
        .assert()
        .code(69);
    ns.cmd().args(["queue", "len", "q"]).assert().stdout("1\n");
}

#[test]
fn json_summary() {
    let ns = Ns::new();
    closed_queue(&ns, &["a".into(), "b".into()]);
    let out = ns
        .cmd()
        .args(["--json", "queue", "consume", "q", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queue"], "q");
    assert_eq!(v["processed"], 2);
    assert_eq!(v["failed"], 0);
}

#[test]
fn a_signal_stops_consume_after_the_commands_in_flight() {
    use std::os::unix::process::ExitStatusExt;
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    let done = ns.file("done");
    let script = format!(
        "cat > /dev/null; sleep 0.3; echo finished >> {}",
        done.display()
    );
    let c = ns.spawn(&[
        "queue", "consume", "-j", "2", "q", "--", "sh", "-c", &script,
    ]);
    ns.wait_until("the workers to wait", || {
        ns.stat_of("q", "waiting_get") == 2
    });
    ns.cmd()
        .args(["queue", "put", "q", "one"])
        .assert()
        .success();
    ns.wait_until("a worker to take it", || ns.stat_of("q", "total_got") == 1);
    c.signal(libc::SIGTERM);
    let (st, _) = c.finish();
    assert_eq!(st.signal(), Some(libc::SIGTERM));
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "finished\n");
    assert_eq!(ns.stat_of("q", "waiting_get"), 0);
}

#[test]
fn a_killed_consume_leaves_no_worker_running_and_stat_shows_in_flight() {
    let ns = Ns::new();
    let msgs: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    closed_queue(&ns, &msgs);
    let mut cmd = ns.std_cmd(&[
        "queue",
        "consume",
        "-j",
        "2",
        "q",
        "--",
        "sh",
        "-c",
        "cat >/dev/null; echo $$ >> pids; exec sleep 60",
    ]);
    cmd.current_dir(ns.dir()).stdin(std::process::Stdio::null());
    let mut consume = common::Bg::spawn(&mut cmd);
    let pids = ns.file("pids");
    ns.wait_until("two commands to start", || {
        std::fs::read_to_string(&pids).is_ok_and(|t| t.lines().count() == 2)
    });
    let st = ns.stat("q");
    assert!(st.contains(&("in_flight".into(), "2".into())), "{st:?}");
    assert!(st.contains(&("size".into(), "3".into())), "{st:?}");
    let workers: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(consume.pid() as i32, libc::SIGKILL) };
    consume.wait();
    ns.wait_until("the workers to die with consume", || {
        workers.iter().all(|&p| common::dead(p))
    });
    // A restarted consume runs every message, the two in flight again,
    // and nothing runs twice at once.
    ns.cmd()
        .current_dir(ns.dir())
        .args([
            "queue",
            "consume",
            "q",
            "--",
            "sh",
            "-c",
            "cat >> again; echo >> again",
        ])
        .assert()
        .success();
    let again = std::fs::read_to_string(ns.file("again")).unwrap();
    let got: BTreeSet<&str> = again.lines().collect();
    assert_eq!(got, msgs.iter().map(String::as_str).collect());
}

#[test]
fn a_command_that_cannot_start_never_consumes_its_message() {
    let ns = Ns::new();
    let msgs: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    closed_queue(&ns, &msgs);
    // Too few file descriptors for 40 workers' pipes: some spawns fail
    // with EMFILE. A message is acknowledged only if its command ran.
    let out = assert_cmd::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 32; exec \"$M\" queue consume q -j 40 -- sh -c 'echo \"$(cat)\" >> out'")
        .env("M", common::bin())
        .env("MPROC_DIR", ns.dir())
        .current_dir(ns.dir())
        .timeout(common::WATCHDOG)
        .output()
        .unwrap();
    let ran = std::fs::read_to_string(ns.file("out"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64;
    let left = ns.stat_of("q", "size");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        ran + left,
        200,
        "every message ran or is still queued; {stderr}"
    );
    assert_eq!(ns.stat_of("q", "in_flight"), 0);
    if out.status.success() {
        assert_eq!(left, 0, "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(69), "{stderr}");
    }
    // A command that cannot be started at all (its interpreter is
    // missing: ENOENT from exec): nothing runs, nothing is consumed, 69.
    let ns = Ns::new();
    closed_queue(&ns, &msgs[..3]);
    let script = ns.file("job.sh");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ns.cmd()
        .args(["queue", "consume", "q", "-j", "2", "--"])
        .arg(&script)
        .assert()
        .code(69)
        .stderr(predicate::str::contains("given back"));
    assert_eq!(ns.stat_of("q", "size"), 3);
    assert_eq!(ns.stat_of("q", "in_flight"), 0);
}

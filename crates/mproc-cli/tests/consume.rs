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

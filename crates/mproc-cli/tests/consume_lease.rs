//! `mproc queue consume` acknowledges a message only when its command
//! succeeds: a consumer killed mid-command has its message delivered again,
//! and `--tries` retries failed commands.

mod common;

use common::Ns;

#[test]
fn a_killed_consumer_s_message_is_handled_by_the_next_one() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["queue", "put", "q", "precious"])
        .assert()
        .success();
    // The first consumer's command blocks forever on this message.
    let script = format!("cat > {}; sleep 600", ns.file("got.1").display());
    let mut first = ns.spawn(&["queue", "consume", "q", "--", "sh", "-c", &script]);
    ns.wait_until("the first consumer took the message", || {
        ns.file("got.1").exists()
    });
    assert_eq!(ns.stat_of("q", "size"), 0);
    first.signal(libc::SIGKILL);
    first.wait();
    ns.cmd().args(["queue", "close", "q"]).assert().success();
    // The message comes back for the next consumer; then the stream ends.
    ns.cmd()
        .current_dir(ns.dir())
        .args(["queue", "consume", "q", "--", "sh", "-c", "cat > got.2"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(ns.file("got.2")).unwrap(),
        "precious"
    );
}

#[test]
fn tries_retries_a_failing_command() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["queue", "put", "q", "flaky"])
        .assert()
        .success();
    ns.cmd().args(["queue", "close", "q"]).assert().success();
    // Fails twice, then succeeds.
    ns.cmd()
        .current_dir(ns.dir())
        .args(["queue", "consume", "--tries", "3", "q", "--", "sh", "-c"])
        .arg("echo x >> attempts; [ $(wc -l < attempts) -ge 3 ]")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let attempts = std::fs::read_to_string(ns.file("attempts")).unwrap();
    assert_eq!(attempts.lines().count(), 3);
}

//! `mproc queue ...`: every subcommand and exit code, the tutorial's
//! `Queue(5)`, timeouts, `close`, and shell producers and consumers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Ns;
use predicates::prelude::*;

#[test]
fn create_exist_ok_and_already_exists() {
    let ns = Ns::new();
    ns.cmd()
        .args([
            "queue",
            "create",
            "jobs",
            "--maxsize",
            "3",
            "--max-bytes",
            "64K",
        ])
        .assert()
        .success()
        .stdout("");
    ns.cmd()
        .args(["queue", "create", "jobs"])
        .assert()
        .code(73)
        .stderr(predicate::str::contains("queue 'jobs' already exists"));
    ns.cmd()
        .args(["queue", "create", "jobs", "--exist-ok"])
        .assert()
        .success();
    ns.cmd()
        .args(["--json", "queue", "create", "other"])
        .assert()
        .success()
        .stdout("{\"created\":true,\"queue\":\"other\"}\n");
    let st = ns.stat("jobs");
    assert!(st.contains(&("maxsize".into(), "3".into())));
    assert!(st.contains(&("max_bytes".into(), "65536".into())));
    // Options out of range are usage errors.
    ns.cmd()
        .args(["queue", "create", "tiny", "--max-bytes", "1"])
        .assert()
        .code(64);
}

#[test]
fn missing_queue_is_66_for_every_command() {
    let ns = Ns::new();
    for args in [
        vec!["put", "nope", "x"],
        vec!["get", "nope"],
        vec!["peek", "nope"],
        vec!["len", "nope"],
        vec!["stat", "nope"],
        vec!["close", "nope"],
        vec!["purge", "nope"],
        vec!["rm", "nope"],
        vec!["consume", "nope", "--", "true"],
    ] {
        ns.cmd()
            .arg("queue")
            .args(&args)
            .assert()
            .code(66)
            .stderr(format!(
                "mproc: queue 'nope' does not exist (dir {})\n",
                ns.dir().display()
            ));
    }
    ns.cmd()
        .args(["queue", "rm", "-f", "nope"])
        .assert()
        .success();
}

#[test]
fn put_get_are_byte_exact() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    // Each DATA argument is one message.
    ns.cmd()
        .args(["queue", "put", "q", "hello world", "", "two\nlines"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "get", "q"])
        .assert()
        .success()
        .stdout("hello world");
    ns.cmd()
        .args(["queue", "get", "q"])
        .assert()
        .success()
        .stdout("");
    ns.cmd()
        .args(["queue", "get", "q", "--lines"])
        .assert()
        .success()
        .stdout("two\nlines\n");
    // Without DATA, stdin is one message, bytes and all.
    let binary: Vec<u8> = (0..=255u8).chain([0, 10, 13, 0]).collect();
    ns.cmd()
        .args(["queue", "put", "q"])
        .write_stdin(binary.clone())
        .assert()
        .success();
    let out = ns.cmd().args(["queue", "get", "q"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, binary);
    // JSON: UTF-8 as "data", anything else as "data_b64".
    ns.cmd()
        .args(["queue", "put", "q", "héllo"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "put", "q"])
        .write_stdin(vec![0xff, 0xfe])
        .assert()
        .success();
    ns.cmd()
        .args(["--json", "queue", "get", "q", "--count", "2"])
        .assert()
        .success()
        .stdout("{\"data\":\"héllo\",\"queue\":\"q\"}\n{\"data_b64\":\"//4=\",\"queue\":\"q\"}\n");
}

#[test]
fn put_lines_and_nul_separated() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["--json", "queue", "put", "q", "--lines"])
        .write_stdin("a\nb b\n\nlast-without-newline")
        .assert()
        .success()
        .stdout("{\"put\":4,\"queue\":\"q\"}\n");
    ns.cmd()
        .args(["queue", "put", "q", "-0"])
        .write_stdin("x\0y\ny\0")
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "len", "q"])
        .assert()
        .success()
        .stdout("6\n");
    ns.cmd()
        .args(["queue", "get", "q", "--count", "4", "--lines"])
        .assert()
        .success()
        .stdout("a\nb b\n\nlast-without-newline\n");
    ns.cmd()
        .args(["queue", "get", "q", "--count", "2", "-0"])
        .assert()
        .success()
        .stdout("x\0y\ny\0");
}

#[test]
fn put_create_makes_the_queue() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "put", "fresh", "x"])
        .assert()
        .code(66);
    ns.cmd()
        .args(["queue", "put", "--create", "fresh", "x"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "get", "fresh"])
        .assert()
        .success()
        .stdout("x");
}

#[test]
fn too_large_message_is_65() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "small", "--max-bytes", "1K"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "put", "small"])
        .write_stdin(vec![b'x'; 4096])
        .assert()
        .code(65)
        .stderr(predicate::str::contains("exceeds"));
}

#[test]
fn peek_len_stat_purge_rm() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "q", "--maxsize", "10"])
        .assert()
        .success();
    ns.cmd().args(["queue", "peek", "q"]).assert().code(1);
    ns.cmd()
        .args(["queue", "put", "q", "first", "second"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "peek", "q", "--lines"])
        .assert()
        .success()
        .stdout("first\n");
    ns.cmd()
        .args(["queue", "len", "q"])
        .assert()
        .success()
        .stdout("2\n");
    ns.cmd()
        .args(["--json", "queue", "len", "q"])
        .assert()
        .success()
        .stdout("{\"len\":2,\"queue\":\"q\"}\n");
    ns.cmd()
        .args(["queue", "get", "q"])
        .assert()
        .success()
        .stdout("first");
    let out = ns.cmd().args(["queue", "stat", "q"]).output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(
            "size=1 maxsize=10 closed=0 total_put=2 total_got=1 waiting_get=0 waiting_put=0 "
        ),
        "{line}"
    );
    // Eval-able by a shell.
    let mut sh =
        ns.sh("eval \"$(\"$M\" queue stat q)\"; test \"$size\" = 1 && test \"$maxsize\" = 10");
    assert!(sh.wait().success());
    let out = ns
        .cmd()
        .args(["--json", "queue", "stat", "q"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], 1);
    assert_eq!(v["total_put"], 2);
    assert_eq!(v["closed"], false);
    ns.cmd()
        .args(["queue", "put", "q", "a", "b"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "purge", "q"])
        .assert()
        .success()
        .stdout("3\n");
    ns.cmd()
        .args(["queue", "len", "q"])
        .assert()
        .success()
        .stdout("0\n");
    ns.cmd()
        .args(["queue", "ls"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("q\t0\t10\t"));
    ns.cmd().args(["queue", "rm", "q"]).assert().success();
    ns.cmd().args(["queue", "len", "q"]).assert().code(66);
    ns.cmd().args(["queue", "ls"]).assert().success().stdout("");
}

#[test]
fn tutorial_queue_of_five() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "q5", "--maxsize", "5"])
        .assert()
        .success();
    // Five puts return at once (print('111') runs).
    for i in 1..=5 {
        ns.cmd()
            .args(["queue", "put", "-n", "q5", &i.to_string()])
            .assert()
            .success();
    }
    // A sixth with -n fails at once, with -t 0.3 after 0.3 s.
    ns.cmd()
        .args(["queue", "put", "-n", "q5", "6"])
        .assert()
        .code(1);
    let start = Instant::now();
    ns.cmd()
        .args(["queue", "put", "-t", "0.3", "q5", "6"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("queue 'q5' is full"));
    assert!(start.elapsed() >= Duration::from_millis(300));
    // A plain sixth put blocks (print('222') never runs) ...
    let mut sixth = ns.spawn(&["queue", "put", "q5", "6"]);
    ns.wait_until("the sixth put to wait", || {
        ns.stat_of("q5", "waiting_put") == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        sixth.running(),
        "the sixth put returned while the queue was full"
    );
    // ... until another process gets one.
    ns.cmd()
        .args(["queue", "get", "q5"])
        .assert()
        .success()
        .stdout("1");
    assert!(sixth.wait().success());
    ns.cmd()
        .args(["queue", "get", "q5", "--count", "5", "--lines"])
        .assert()
        .success()
        .stdout("2\n3\n4\n5\n6\n");
}

#[test]
fn get_on_empty_times_out_with_1() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["queue", "get", "-n", "q"])
        .assert()
        .code(1)
        .stderr("mproc: queue 'q' is empty\n");
    ns.cmd()
        .args(["queue", "get", "-t", "0", "q"])
        .assert()
        .code(1);
    let start = Instant::now();
    ns.cmd()
        .args(["queue", "get", "-t", "0.2", "q"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("gave up after 0.20s"));
    assert!(start.elapsed() >= Duration::from_millis(200));
    // --count stops at the first timeout: a partial batch is a success.
    ns.cmd()
        .args(["queue", "put", "q", "only"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "get", "-t", "0.1", "--count", "3", "--lines", "q"])
        .assert()
        .code(0)
        .stdout("only\n");
    // Nothing in time: 1.
    ns.cmd()
        .args(["queue", "get", "-t", "0.1", "--count", "3", "--lines", "q"])
        .assert()
        .code(1)
        .stdout("");
    ns.cmd()
        .args(["queue", "put", "q", "a", "b"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "get", "-n", "--count", "3", "--lines", "q"])
        .assert()
        .code(0)
        .stdout("a\nb\n");
}

#[test]
fn blocked_get_wakes_on_put() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    let getter = ns.spawn(&["queue", "get", "q"]);
    ns.wait_until("the get to wait", || ns.stat_of("q", "waiting_get") == 1);
    ns.cmd()
        .args(["queue", "put", "q", "wake up"])
        .assert()
        .success();
    let (st, out) = getter.finish();
    assert!(st.success());
    assert_eq!(out, b"wake up");
}

#[test]
fn close_drains_then_exits_3() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    // Blocked gets end with 3 when the queue is closed.
    let g1 = ns.spawn(&["queue", "get", "q"]);
    let g2 = ns.spawn(&["queue", "get", "q"]);
    ns.wait_until("two gets to wait", || ns.stat_of("q", "waiting_get") == 2);
    ns.cmd().args(["queue", "close", "q"]).assert().success();
    for g in [g1, g2] {
        let (st, out) = g.finish();
        assert_eq!(st.code(), Some(3));
        assert!(out.is_empty());
    }

    // A backlog is drained first.
    ns.cmd().args(["queue", "create", "b"]).assert().success();
    ns.cmd()
        .args(["queue", "put", "b", "one", "two"])
        .assert()
        .success();
    ns.cmd()
        .args(["--json", "queue", "close", "b"])
        .assert()
        .success()
        .stdout("{\"closed\":true,\"queue\":\"b\",\"size\":2}\n");
    ns.cmd()
        .args(["queue", "put", "b", "three"])
        .assert()
        .code(3)
        .stderr("mproc: queue 'b' is closed\n");
    ns.cmd()
        .args(["queue", "peek", "b"])
        .assert()
        .success()
        .stdout("one");
    ns.cmd()
        .args(["queue", "get", "b"])
        .assert()
        .success()
        .stdout("one");
    ns.cmd()
        .args(["queue", "get", "b", "--count", "5", "--lines"])
        .assert()
        .code(0)
        .stdout("two\n");
    ns.cmd()
        .args(["queue", "get", "b", "--count", "5", "--lines"])
        .assert()
        .code(3)
        .stdout("");
    ns.cmd()
        .args(["queue", "get", "b"])
        .assert()
        .code(3)
        .stdout("")
        .stderr("");
    ns.cmd().args(["queue", "get", "-n", "b"]).assert().code(3);
    ns.cmd()
        .args(["queue", "peek", "b"])
        .assert()
        .code(3)
        .stderr("mproc: queue 'b' is closed and drained\n");
    assert_eq!(ns.stat_of("b", "closed"), 1);
}

#[test]
fn blocked_put_fails_on_close() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "q", "--maxsize", "1"])
        .assert()
        .success();
    ns.cmd().args(["queue", "put", "q", "x"]).assert().success();
    let p = ns.spawn(&["queue", "put", "q", "y"]);
    ns.wait_until("the put to wait", || ns.stat_of("q", "waiting_put") == 1);
    ns.cmd().args(["queue", "close", "q"]).assert().success();
    let (st, _) = p.finish();
    assert_eq!(st.code(), Some(3));
}

#[test]
fn shell_consumer_loop_ends_after_close() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "jobs"])
        .assert()
        .success();
    ns.cmd()
        .args(["queue", "put", "jobs", "a", "b", "c"])
        .assert()
        .success();
    ns.cmd().args(["queue", "close", "jobs"]).assert().success();
    assert_cmd::Command::new("sh")
        .arg("-c")
        .arg("while msg=$(\"$M\" queue get jobs); do echo \"got $msg\"; done; echo end")
        .env("M", common::bin())
        .env("MPROC_DIR", ns.dir())
        .timeout(common::WATCHDOG)
        .assert()
        .success()
        .stdout("got a\ngot b\ngot c\nend\n")
        .stderr("");
}

#[test]
fn shell_producers_and_consumers_lose_and_duplicate_nothing() {
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "work", "--maxsize", "64"])
        .assert()
        .success();
    // Consumers: two batch readers and one message-per-process loop.
    let mut consumers = vec![
        ns.sh(&until_closed(
            "\"$M\" queue get work --count 50 --lines >> out.0",
        )),
        ns.sh(&until_closed(
            "\"$M\" queue get work --count 50 --lines >> out.1",
        )),
        ns.sh(&until_closed(
            "m=$(\"$M\" queue get work) && echo \"$m\" >> out.2",
        )),
    ];
    // Producers: two streaming --lines, one process per message.
    let mut producers = vec![
        ns.sh("seq 1 2000 | sed 's/^/p0-/' | \"$M\" queue put work --lines"),
        ns.sh("seq 1 2000 | sed 's/^/p1-/' | \"$M\" queue put work --lines"),
        ns.sh("i=1; while [ $i -le 150 ]; do \"$M\" queue put work \"p2-$i\" || exit 1; i=$((i+1)); done"),
    ];
    for p in &mut producers {
        assert!(p.wait().success(), "a producer failed");
    }
    ns.cmd().args(["queue", "close", "work"]).assert().success();
    for c in &mut consumers {
        assert!(c.wait().success(), "a consumer did not end with 3");
    }
    let mut got = Vec::new();
    for i in 0..3 {
        let text = std::fs::read_to_string(ns.file(&format!("out.{i}"))).unwrap_or_default();
        got.extend(text.lines().map(str::to_string));
    }
    let expected: BTreeSet<String> = (1..=2000)
        .map(|i| format!("p0-{i}"))
        .chain((1..=2000).map(|i| format!("p1-{i}")))
        .chain((1..=150).map(|i| format!("p2-{i}")))
        .collect();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "duplicated messages");
    assert_eq!(unique, expected, "lost or foreign messages");
    assert_eq!(ns.stat_of("work", "total_got"), 4150);
}

/// A shell loop running `step` until it fails, succeeding only if the
/// failure was exit 3 (closed and drained).
fn until_closed(step: &str) -> String {
    format!("while :; do {step} || {{ rc=$?; break; }}; done; test \"$rc\" -eq 3")
}

#[test]
fn a_signal_ends_blocked_calls_and_waiter_counts_stay_exact() {
    use std::os::unix::process::ExitStatusExt;
    let ns = Ns::new();
    ns.cmd()
        .args(["queue", "create", "q", "--maxsize", "1"])
        .assert()
        .success();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let g = ns.spawn(&["queue", "get", "q"]);
        ns.wait_until("the get to wait", || ns.stat_of("q", "waiting_get") == 1);
        g.signal(sig);
        let (st, out) = g.finish();
        assert_eq!(st.signal(), Some(sig), "ended by the signal");
        assert!(out.is_empty());
        assert_eq!(ns.stat_of("q", "waiting_get"), 0);
    }
    ns.cmd().args(["queue", "put", "q", "x"]).assert().success();
    let p = ns.spawn(&["queue", "put", "q", "y"]);
    ns.wait_until("the put to wait", || ns.stat_of("q", "waiting_put") == 1);
    p.signal(libc::SIGHUP);
    let (st, _) = p.finish();
    assert_eq!(st.signal(), Some(libc::SIGHUP));
    assert_eq!(ns.stat_of("q", "waiting_put"), 0);
    assert_eq!(ns.stat_of("q", "size"), 1);
}

/// The lines of CLI.md from the one starting with `first` to the next
/// `done` line, exactly as printed.
fn cli_md_loop(first: &str) -> String {
    let doc = include_str!("../CLI.md");
    let start = doc
        .find(first)
        .unwrap_or_else(|| panic!("CLI.md has no line starting {first:?}"));
    let rest = &doc[start..];
    let end = rest.find("\ndone").expect("the loop's done") + "\ndone".len();
    let line_end = rest[end..].find('\n').map_or(rest.len(), |i| end + i);
    rest[..line_end].to_string()
}

/// A directory holding an `mproc` symlink to the binary under test, for a
/// `PATH` that runs the documented commands as printed.
fn path_with_mproc(ns: &Ns) -> String {
    let bin = ns.file("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("mproc");
    if !link.exists() {
        std::os::unix::fs::symlink(common::bin(), &link).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn cli_md_batch_recipe_processes_the_last_partial_batch() {
    let ns = Ns::new();
    let recipe = cli_md_loop("while mproc queue get jobs --count 50 --lines > batch.txt; do");
    let path = path_with_mproc(&ns);
    // The recipe's `process-batch`: a command on PATH that records its batch.
    let pb = ns.file("bin").join("process-batch");
    std::fs::write(
        &pb,
        "#!/bin/sh\ncat \"$1\" >> processed.txt; echo batch >> batches.txt\n",
    )
    .unwrap();
    std::fs::set_permissions(&pb, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = format!(
        "set -e\n\
         mproc queue create jobs --maxsize 100\n\
         seq 1 70 | mproc queue put jobs --lines\n\
         mproc queue close jobs\n\
         set +e\n\
         {recipe}\n\
         echo \"end $?\"\n"
    );
    assert_cmd::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("MPROC_DIR", ns.dir())
        .current_dir(ns.dir())
        .timeout(common::WATCHDOG)
        .assert()
        .success()
        .stdout("end 0\n")
        .stderr("");
    let got = std::fs::read_to_string(ns.file("processed.txt")).unwrap();
    let want: String = (1..=70).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        got, want,
        "every message of every batch, the last partial one too"
    );
    let batches = std::fs::read_to_string(ns.file("batches.txt")).unwrap();
    assert_eq!(batches.lines().count(), 2, "50 + 20");
}

#[test]
fn get_leased_acknowledges_only_what_it_wrote() {
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "q"]).assert().success();
    ns.cmd()
        .args(["queue", "put", "q", "one", "two"])
        .assert()
        .success();
    // stdout that fails every write: --leased gives the message back.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let st = ns
        .std_cmd(&["queue", "get", "--leased", "q"])
        .stdout(full())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    assert_eq!(ns.stat_of("q", "size"), 2);
    assert_eq!(ns.stat_of("q", "in_flight"), 0);
    ns.cmd()
        .args([
            "queue", "get", "--leased", "--count", "5", "--lines", "-n", "q",
        ])
        .assert()
        .success()
        .stdout("one\ntwo\n");
    assert_eq!(ns.stat_of("q", "size"), 0);
    assert_eq!(ns.stat_of("q", "in_flight"), 0);
    // Plain get is at-most-once: the same failed write loses the message.
    ns.cmd()
        .args(["queue", "put", "q", "three"])
        .assert()
        .success();
    let st = ns
        .std_cmd(&["queue", "get", "q"])
        .stdout(full())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    assert_eq!(ns.stat_of("q", "size"), 0);
}

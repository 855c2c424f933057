//! The CLI against a Redis server in trouble: `mproc lock` never lets its
//! command outlive the lease (with the server stopped past the lease, the
//! command is gone before the lease could have run out on the server, and
//! `mproc` exits 75); unreachable or silent servers exit 75 with words; a
//! waiting `mproc lock` rides out an outage within `--retry-for`.
//!
//! Each test starts its own `redis-server` on a free loopback port (and
//! kills it). They run when `MPROC_TEST_REDIS_URL` is set (the sign that
//! Redis is installed, see `.ci/redis.sh`); otherwise they print that they
//! were skipped, unless `MPROC_REQUIRE_REDIS=1`.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn enabled() -> bool {
    let required = std::env::var("MPROC_REQUIRE_REDIS").is_ok_and(|v| v == "1");
    let have = std::env::var("MPROC_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    if !have {
        assert!(
            !required,
            "MPROC_REQUIRE_REDIS=1 but MPROC_TEST_REDIS_URL is not set"
        );
        eprintln!("skipped: MPROC_TEST_REDIS_URL is not set (no Redis server for this test)");
    }
    have
}

/// A redis-server of this test, resumed and killed when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(child) = spawn(port, dir.path()) {
                return Server {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("could not start redis-server");
    }

    /// Kills the server (its port then refuses connections).
    fn stop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port.
    fn restart(&mut self) {
        self.child = spawn(self.port, self._dir.path()).expect("redis-server restarts");
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }
}

/// A redis-server on `port`, once it answers.
fn spawn(port: u16, dir: &std::path::Path) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    for _ in 0..100 {
        let pong = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
        if pong {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn lock_command_is_stopped_before_the_lease_expires_on_a_stopped_server() {
    if !enabled() {
        return;
    }
    let srv = Server::start();
    let url = format!(
        "redis://127.0.0.1:{}/?lease=5&timeout=2&prefix=lease{}",
        srv.port,
        std::process::id()
    );
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mproc = Command::new(env!("CARGO_BIN_EXE_mproc"))
        .env("MPROC_URL", &url)
        .env_remove("MPROC_DIR")
        .args(["lock", "critical", "--", "sh", "-c"])
        .arg(format!("echo $$ > {}; exec sleep 30", pidfile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let pid: u32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // Let renewals succeed: the command runs past its first lease.
    std::thread::sleep(Duration::from_millis(5500));
    assert!(
        !common::dead(pid),
        "the command was stopped while renewals succeed"
    );
    srv.signal(libc::SIGSTOP);
    let paused = Instant::now();
    while !common::dead(pid) && paused.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = paused.elapsed();
    // The last renewal the server confirmed was at most lease/3 (1.67 s)
    // before the pause, so its lease runs until 3.33 s after the pause at
    // the earliest.
    assert!(
        common::dead(pid),
        "the command still runs {after:?} after the pause"
    );
    assert!(
        after < Duration::from_millis(3333),
        "the command ran {after:?} into the pause: past the lease's end"
    );
    // Past the lease, the server comes back; mproc releases and exits.
    std::thread::sleep(Duration::from_millis(5500).saturating_sub(paused.elapsed()));
    srv.signal(libc::SIGCONT);
    let out = mproc.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("lease was lost"), "{err}");
    // The next holder is not told that a holder died: mproc lived until it
    // had stopped the command, and cleared its mark once the server was back.
    let next = Command::new(env!("CARGO_BIN_EXE_mproc"))
        .env("MPROC_URL", &url)
        .env_remove("MPROC_DIR")
        .args(["lock", "critical", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{err}");
    assert!(!err.contains("died"), "{err}");
}

fn mproc(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mproc"));
    c.env("MPROC_URL", url)
        .env_remove("MPROC_DIR")
        .env_remove("MPROC_RETRY_FOR")
        .stdin(Stdio::null());
    c
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn server_trouble_exits_75_and_says_what_happened() {
    if !enabled() {
        return;
    }
    let mut srv = Server::start();
    let url = format!(
        "redis://127.0.0.1:{}/?timeout=1&prefix=trouble{}",
        srv.port,
        std::process::id()
    );
    let ok = mproc(&url)
        .args(["queue", "create", "jobs"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    // A server that does not answer.
    srv.signal(libc::SIGSTOP);
    let out = mproc(&url)
        .args(["queue", "put", "jobs", "x"])
        .output()
        .unwrap();
    srv.signal(libc::SIGCONT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("timed out after 1 s"), "{err}");
    // A server that is gone.
    srv.stop();
    let out = mproc(&url)
        .args(["queue", "put", "jobs", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    let out = mproc(&url).args(["ls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75));
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn waiting_lock_rides_out_an_outage_within_retry_for() {
    if !enabled() {
        return;
    }
    let mut srv = Server::start();
    let url = format!(
        "redis://127.0.0.1:{}/?timeout=1&prefix=outage{}",
        srv.port,
        std::process::id()
    );
    srv.stop();
    let waiter = mproc(&url)
        .args(["--retry-for", "30", "lock", "printer", "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    srv.restart();
    let out = waiter.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("retrying for up to 30").count(), 1, "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("answers again"), "{err}");
    // With no retry budget, the same outage ends the command at once.
    srv.stop();
    let (out, took) = {
        let t = Instant::now();
        let o = mproc(&url)
            .args(["--retry-for", "0", "lock", "printer", "--", "true"])
            .output()
            .unwrap();
        (o, t.elapsed())
    };
    assert_eq!(out.status.code(), Some(75));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn configuration_is_checked_at_connect() {
    if !enabled() {
        return;
    }
    let srv = Server::start();
    let base = format!("redis://127.0.0.1:{}/", srv.port);
    let prefix = format!("conf{}", std::process::id());
    // A misspelt option is a usage error naming it.
    let out = mproc(&format!("{base}?prefix={prefix}&consumer_leese=2"))
        .arg("ls")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("consumer_leese"), "{err}");
    // Messages name the server, not a "dir".
    let url = format!("{base}?prefix={prefix}");
    let out = mproc(&url)
        .args(["queue", "len", "missing"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{err}");
    assert!(err.contains("(on redis://127.0.0.1:"), "{err}");
    assert!(!err.contains("dir "), "{err}");
    // A server that may evict: a warning, an error with strict=1.
    let out = mproc(&url).arg("ls").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("maxmemory-policy"));
    let set = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &srv.port.to_string()])
        .args(["config", "set", "maxmemory-policy", "allkeys-lru"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&set.stdout).contains("OK"));
    let out = mproc(&url).arg("ls").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("maxmemory-policy is allkeys-lru"), "{err}");
    let out = mproc(&format!("{url}&strict=1"))
        .arg("ls")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("noeviction"), "{err}");
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn consume_rides_out_an_outage_and_loses_nothing() {
    if !enabled() {
        return;
    }
    let srv = Server::start();
    let url = format!(
        "redis://127.0.0.1:{}/?timeout=1&prefix=consume{}",
        srv.port,
        std::process::id()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("done");
    let run = |args: &[&str]| {
        let o = mproc(&url).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    };
    run(&["queue", "create", "q"]);
    let first: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let mut put = vec!["queue", "put", "q"];
    put.extend(first.iter().map(String::as_str));
    run(&put);
    let script = format!("m=$(cat); echo \"$m\" >> {}; sleep 0.05", out.display());
    let consumer = mproc(&url)
        .args([
            "--retry-for",
            "30",
            "queue",
            "consume",
            "q",
            "-j",
            "2",
            "--",
        ])
        .args(["sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server stops answering mid-stream, then comes back.
    std::thread::sleep(Duration::from_millis(300));
    srv.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    srv.signal(libc::SIGCONT);
    let more: Vec<String> = (41..=60).map(|i| i.to_string()).collect();
    let mut put = vec!["queue", "put", "q"];
    put.extend(more.iter().map(String::as_str));
    run(&put);
    run(&["queue", "close", "q"]);
    let o = consumer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("retrying for up to 30"), "{err}");
    assert!(err.contains("answers again"), "{err}");
    // At least once: every message ran (one may run twice when its
    // acknowledgement was lost with the connection).
    let done = std::fs::read_to_string(&out).unwrap();
    let seen: std::collections::BTreeSet<u32> = done.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(seen, (1..=60).collect(), "{done}");
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn stat_shows_only_what_a_server_queue_enforces() {
    if !enabled() {
        return;
    }
    let srv = Server::start();
    let url = format!(
        "redis://127.0.0.1:{}/?prefix=stat{}",
        srv.port,
        std::process::id()
    );
    assert!(mproc(&url)
        .args(["queue", "create", "q"])
        .status()
        .unwrap()
        .success());
    let out = mproc(&url).args(["queue", "stat", "q"]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && line.starts_with("size=0 "),
        "{line}"
    );
    // Redis does not enforce a byte budget: no bytes/max_bytes to read.
    assert!(
        !line.contains("max_bytes") && !line.contains(" bytes="),
        "{line}"
    );
}

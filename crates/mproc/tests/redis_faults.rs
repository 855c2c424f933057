//! Faults of the Redis backend, each against a private `redis-server` that
//! the test starts (and stops) on a free loopback port: a server restart
//! mid-run, a paused server, a consumer killed mid-item, a lock holder
//! stalled past its lease, poison items set aside.
//!
//! They run when `MPROC_TEST_REDIS_URL` is set (the sign that Redis is
//! installed, see `.ci/redis.sh`); otherwise they print that they were
//! skipped, unless `MPROC_REQUIRE_REDIS=1`, which makes that a failure.
#![cfg(feature = "redis")]

mod common;

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{timed, JOIN};
use mproc::{
    ByteQueue, FenceError, GetError, JoinableQueue, Lock, LockError, Namespace, Process,
    PutErrorKind, Queue, QueueOptions,
};

/// A redis-server of this test, killed when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("mproc-redis-fault-")
            .tempdir()
            .unwrap();
        let mut s = Server {
            child: None,
            port: 0,
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..20 {
            s.port = free_port();
            if s.spawn() {
                return s;
            }
        }
        panic!("could not start redis-server");
    }

    /// Starts the server on `self.port`; true once it answers.
    fn spawn(&mut self) -> bool {
        let dir: &Path = self.dir.path();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--dir"])
            .arg(dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        for _ in 0..100 {
            if cli(self.port, &["ping"]).is_ok_and(|r| r == "PONG" || r.contains("NOAUTH")) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server did not restart");
    }

    fn url(&self, options: &str) -> String {
        format!("redis://127.0.0.1:{}/?{options}", self.port)
    }

    fn ns(&self, options: &str) -> Namespace {
        Namespace::from_url(&self.url(options)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_io<T>(r: &Result<T, GetError>) -> bool {
    matches!(r, Err(GetError::Io(..)))
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn server_restart_fails_cleanly_then_reconnects() {
    if !enabled() {
        return;
    }
    // Persistence on, so the queue survives the restart.
    let mut srv = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let ns = srv.ns("timeout=2");
    let q: Queue<u32> = Queue::create_in(&ns, "jobs", QueueOptions::new().maxsize(10)).unwrap();
    let lock = Lock::create_in(&ns, "l").unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    // A consumer blocked in get when the server goes away.
    let blocked = {
        let q: Queue<u32> = Queue::open_in(&ns, "jobs").unwrap();
        let e: Queue<u32> = Queue::create_in(&ns, "empty", QueueOptions::new()).unwrap();
        drop(q);
        std::thread::spawn(move || timed(|| e.get_timeout(Duration::from_secs(60))))
    };
    std::thread::sleep(Duration::from_millis(300));
    srv.kill();
    let (r, _) = blocked.join().unwrap();
    assert!(
        is_io(&r),
        "a blocked get must fail with an I/O error, got {r:?}"
    );

    let e = q.try_put(9).unwrap_err();
    assert!(matches!(e.kind(), PutErrorKind::Io(..)), "{:?}", e.kind());
    assert!(
        e.to_string().contains("127.0.0.1"),
        "the error names the server: {e}"
    );
    assert!(is_io(&q.get_timeout(Duration::from_secs(5))));
    assert!(matches!(
        lock.lock_timeout(Duration::from_secs(5)),
        Err(LockError::Io(_))
    ));

    srv.restart();
    // New connections are made on the next calls; the data was kept.
    assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), 0);
    q.put(3).unwrap();
    assert_eq!(q.len(), 3);
    drop(lock.lock_timeout(Duration::from_secs(10)).unwrap());
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn restart_without_persistence_reports_the_lost_queue() {
    if !enabled() {
        return;
    }
    let mut srv = Server::start(&["--appendonly", "no"]);
    let ns = srv.ns("timeout=2");
    let q = ByteQueue::create_in(&ns, "gone", QueueOptions::new()).unwrap();
    q.put(b"x").unwrap();
    srv.restart();
    let e = q.put(b"y").unwrap_err();
    assert!(
        matches!(e.kind(), PutErrorKind::Damaged(m) if m.contains("no longer exists")),
        "{:?}",
        e.kind()
    );
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn paused_server_times_out_with_a_clear_error() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns("timeout=0.5");
    let q = ByteQueue::create_in(&ns, "paused", QueueOptions::new()).unwrap();
    q.put(b"a").unwrap();
    assert_eq!(
        cli(srv.port, &["client", "pause", "2500", "all"]).unwrap(),
        "OK"
    );
    let (r, d) = timed(|| q.try_put(b"b"));
    let e = r.unwrap_err();
    match e.kind() {
        PutErrorKind::Io(err) => {
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(d >= Duration::from_millis(400), "gave up after {d:?}");
    let (r, _) = timed(|| q.try_get());
    assert!(is_io(&r), "{r:?}");
    // After the pause, the same handle works again.
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match q.try_put(b"c") {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // "b" may or may not have been applied when the pause ended.
    assert_eq!(q.get().unwrap(), b"a");
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn consumer_killed_mid_item_has_its_item_redelivered() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns("consumer_lease=1");
    let q: JoinableQueue<u32> = JoinableQueue::create_in(&ns, "work", QueueOptions::new()).unwrap();
    let gate: Queue<u32> = Queue::create_in(&ns, "gate", QueueOptions::new()).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    // A plain get: the item stays leased to the consumer until it comes
    // back for more or calls task_done.
    let mut child = Process::spawn(
        (q.clone(), gate.clone()),
        |(q, g): (JoinableQueue<u32>, Queue<u32>)| -> () {
            let item = q.get().unwrap();
            g.put(item).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
    )
    .unwrap();
    let taken = gate.get_timeout(JOIN).unwrap();
    assert_eq!(taken, 0);
    let killed_at = Instant::now();
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    assert_eq!(q.len(), 4);

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let item = q.get_timeout(JOIN).unwrap();
        seen.push(item);
        q.task_done().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![0, 1, 2, 3, 4],
        "every item, the killed one's included"
    );
    assert!(
        killed_at.elapsed() >= Duration::from_millis(500),
        "redelivered before the lease could expire"
    );
    q.join_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(q.unfinished(), 0);
    assert!(q.stats().requeued >= 1);
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn poison_item_is_set_aside_after_max_deliveries() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns("consumer_lease=0.5");
    let q: JoinableQueue<String> =
        JoinableQueue::create_in(&ns, "poison", QueueOptions::new().max_deliveries(2)).unwrap();
    q.put("poison".into()).unwrap();
    for round in 0..2 {
        let mut child = Process::spawn(q.clone(), |q: JoinableQueue<String>| -> () {
            let item = q.get_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(item, "poison");
            // Crash while handling it: no destructor runs.
            std::process::exit(3);
        })
        .unwrap();
        let _ = child.join_timeout(JOIN);
        if round == 0 {
            // Wait for the redelivery before the next consumer starts.
            let deadline = Instant::now() + JOIN;
            while q.is_empty() {
                let _ = q.as_bytes().reclaim();
                assert!(Instant::now() < deadline, "never redelivered");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let deadline = Instant::now() + JOIN;
    loop {
        let _ = q.as_bytes().reclaim();
        if !q.as_bytes().dead_letters().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never set aside");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = q.as_bytes().dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(q.is_empty());
    assert_eq!(q.stats().dead_lettered, 1);
    // A set-aside item is not waited for.
    q.join_timeout(Duration::from_secs(10)).unwrap();
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn stalled_lock_holder_loses_its_lease_and_its_fenced_write_is_refused() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns("lease=1");
    let lock = Lock::create_in(&ns, "tickets-lock").unwrap();
    {
        let g = lock.lock().unwrap();
        g.fenced_set("tickets", 10).unwrap();
    }
    let gate: Queue<u64> = Queue::create_in(&ns, "gate", QueueOptions::new()).unwrap();
    let mut child = Process::spawn(
        (lock.clone(), gate.clone()),
        |(l, g): (Lock, Queue<u64>)| {
            let guard = l.lock().unwrap();
            g.put(guard.fence().unwrap()).unwrap();
            // The whole process is stopped (SIGSTOP) during this sleep.
            std::thread::sleep(Duration::from_millis(2000));
            let write = match guard.fenced_add("tickets", -1, 0) {
                Err(FenceError::LeaseLost) => "refused".to_string(),
                other => format!("{other:?}"),
            };
            let check = matches!(guard.check(), Err(FenceError::LeaseLost))
                && !guard.lease_valid()
                && guard.lease_valid_until().unwrap() <= Instant::now();
            (write, check)
        },
    )
    .unwrap();
    let child_fence = gate.get_timeout(JOIN).unwrap();
    signal(child.pid(), libc::SIGSTOP);
    let stopped_at = Instant::now();
    // The lease runs out while the holder is stopped; the next acquirer is
    // told the previous holder never released.
    let guard = match lock.lock_timeout(JOIN) {
        Err(LockError::OwnerDied(o)) => {
            // The holder is stopped, not dead: its lease expired.
            assert!(o.previous_lease_expired(), "told 'died' of a live holder");
            assert!(o.to_string().contains("lease expired"), "{o}");
            o.into_inner()
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    };
    assert!(stopped_at.elapsed() >= Duration::from_millis(500));
    let my_fence = guard.fence().unwrap();
    assert!(my_fence > child_fence, "fencing tokens only increase");
    assert_eq!(guard.fenced_add("tickets", -1, 0).unwrap(), Some(9));
    signal(child.pid(), libc::SIGCONT);
    let (write, check) = child.join_timeout(JOIN).unwrap();
    assert_eq!(write, "refused", "the stale holder's write");
    assert!(check, "the stale holder is told its lease was lost");
    assert_eq!(lock.fenced_get("tickets").unwrap(), 9);
    guard.check().unwrap();
    drop(guard);
    assert!(!lock.is_locked());
    let _: PathBuf = srv.dir.path().to_path_buf();
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn password_in_the_url() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&["--requirepass", "s3cret"]);
    let ns = Namespace::from_url(&format!(
        "redis://:s3cret@127.0.0.1:{}/2?prefix=pw",
        srv.port
    ))
    .unwrap();
    let q: Queue<String> = Queue::create_in(&ns, "q", QueueOptions::new()).unwrap();
    q.put("with a password".into()).unwrap();
    assert_eq!(q.get().unwrap(), "with a password");
    let wrong = Namespace::from_url(&format!("redis://:nope@127.0.0.1:{}/2", srv.port)).unwrap();
    let e = Queue::<String>::open_in(&wrong, "q").unwrap_err();
    assert!(
        !e.to_string().contains("nope"),
        "the password is not shown: {e}"
    );
    assert!(!format!("{wrong:?}").contains("nope"), "nor in Debug");
}

/// `rediss://` against a TLS-only server with a self-signed certificate
/// (`#insecure`: no certificate check), password included.
#[cfg(feature = "redis-tls")]
#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn tls_url() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed")
        .success();
    assert!(ok, "cannot make a certificate");
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let mut srv = Server::start(&[]);
    // Same data directory and port, now TLS only.
    srv.kill();
    srv.args = [
        "--tls-port",
        &srv.port.to_string(),
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let port = srv.port;
    // `spawn` pings without TLS: start it by hand and wait for TLS answers.
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--dir"])
        .arg(srv.dir.path())
        .args(&srv.args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    srv.child = Some(child);
    let ns = Namespace::from_url(&format!(
        "rediss://:s3cret@127.0.0.1:{port}/?prefix=tls&timeout=2#insecure"
    ))
    .unwrap();
    let deadline = Instant::now() + JOIN;
    let q: Queue<u32> = loop {
        match Queue::open_or_create_in(&ns, "q", QueueOptions::new().maxsize(2)) {
            Ok(q) => break q,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lock = Lock::open_or_create_in(&ns, "l").unwrap();
    let g = lock.lock().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.try_put(3).unwrap_err().is_full());
    drop(g);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (1, 2));
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn shared_memory_objects_refuse_a_server_namespace() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns("prefix=shm");
    let cwd_before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    let e = mproc::Value::<i64>::create_in(&ns, "v", 0, true).unwrap_err();
    assert!(e.to_string().contains("cannot live on a server"), "{e}");
    assert!(mproc::Value::<i64>::open_in(&ns, "v").is_err());
    let cwd_after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(cwd_before.len(), cwd_after.len(), "no file was created");
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn holder_is_told_its_lease_is_lost_before_it_expires_on_a_paused_server() {
    if !enabled() {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let srv = Server::start(&[]);
    let ns = srv.ns("lease=1.5&timeout=5");
    let lock = Lock::create_in(&ns, "paused-lease").unwrap();
    let guard = lock.lock().unwrap();
    let first = guard
        .lease_valid_until()
        .expect("a lock on a server has a lease");
    // Renewals (every lease/3) move the end of the lease forward.
    std::thread::sleep(Duration::from_millis(1200));
    let until = guard.lease_valid_until().unwrap();
    assert!(until > first, "renewed: {until:?} after {first:?}");
    assert!(guard.lease_valid());
    let fired: Arc<Mutex<Option<Instant>>> = Arc::default();
    let f2 = Arc::clone(&fired);
    guard.on_lease_lost(move || *f2.lock().unwrap() = Some(Instant::now()));
    // A callback registered on a lock released first is never run.
    let other = Lock::create_in(&ns, "released-first").unwrap();
    let never = Arc::new(AtomicBool::new(false));
    {
        let g = other.lock().unwrap();
        let n2 = Arc::clone(&never);
        g.on_lease_lost(move || n2.store(true, Ordering::SeqCst));
    }
    let server = srv.child.as_ref().unwrap().id();
    let before = guard.lease_valid_until().unwrap();
    signal(server, libc::SIGSTOP);
    let paused = Instant::now();
    let deadline = paused + Duration::from_secs(4);
    while fired.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let at = fired.lock().unwrap().expect("the loss callback ran");
    assert!(!guard.lease_valid());
    // Not before the last confirmed renewal's lease, and no later than a
    // lease after the pause (when the server's lease surely ran out).
    assert!(
        at + Duration::from_millis(30) >= before,
        "{at:?} < {before:?}"
    );
    assert!(
        at <= paused + Duration::from_millis(1500),
        "told {:?} after the pause",
        at - paused
    );
    std::thread::sleep(Duration::from_millis(1000));
    signal(server, libc::SIGCONT);
    // The next acquirer is told the lease expired (this process lives).
    let lock2 = Lock::open_in(&ns, "paused-lease").unwrap();
    match lock2.lock_timeout(JOIN) {
        Err(LockError::OwnerDied(o)) => assert!(o.previous_lease_expired()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    drop(guard);
    assert!(!never.load(Ordering::SeqCst));
}

/// A redis-sentinel of this test watching `master_port` as `mymaster`,
/// killed when dropped.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("mproc-redis-sentinel-")
            .tempdir()
            .unwrap();
        for _ in 0..20 {
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                     sentinel down-after-milliseconds mymaster 2000\n\
                     sentinel failover-timeout mymaster 10000\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            for _ in 0..100 {
                if cli(port, &["ping"]).is_ok_and(|r| r == "PONG") {
                    return Sentinel {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-sentinel");
    }

    /// The port of the master the sentinel names now.
    fn master_port(&self) -> Option<u16> {
        let r = cli(
            self.port,
            &["sentinel", "get-master-addr-by-name", "mymaster"],
        )
        .ok()?;
        r.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries `f` for up to 30 s while it fails (a failover is under way).
fn eventually<T, E: std::fmt::Debug>(what: &str, mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}: {e:?}; again");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn sentinel_failover_is_followed_without_reconfiguring() {
    if !enabled() {
        return;
    }
    let master = Server::start(&[]);
    let mport = master.port.to_string();
    let replica = Server::start(&["--replicaof", "127.0.0.1", &mport]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(replica.port, &["info", "replication"])
        .unwrap()
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "the replica never synchronised");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sentinel = Sentinel::start(master.port);
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/mymaster?prefix=failover&timeout=2&lease=2",
        sentinel.port
    );
    let ns = Namespace::from_url(&url).unwrap();
    let q = ByteQueue::create_in(&ns, "jobs", QueueOptions::new()).unwrap();
    q.put(b"a").unwrap();
    q.put(b"b").unwrap();
    let lock = Lock::create_in(&ns, "printer").unwrap();
    let fence_before = {
        let g = lock.lock().unwrap();
        g.fenced_set("pages", 5).unwrap();
        g.fence().unwrap()
    };
    // Everything reached the replica before the failover (asynchronous
    // replication: what had not would be lost).
    let deadline = Instant::now() + Duration::from_secs(20);
    while cli(replica.port, &["llen", "{failover:jobs}:ready"]).unwrap() != "2"
        || cli(replica.port, &["get", "{failover:printer}:cell:pages"]).unwrap() != "5"
    {
        assert!(Instant::now() < deadline, "replication did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sentinel.master_port(), Some(master.port));
    // The sentinel learns of the replica from the master's INFO: until it
    // has, a failover is refused (NOGOODSLAVE).
    eventually("forced failover", || {
        match cli(sentinel.port, &["sentinel", "failover", "mymaster"]).unwrap() {
            ok if ok == "OK" => Ok(()),
            other => Err(other),
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinel.master_port() != Some(replica.port) {
        assert!(Instant::now() < deadline, "the failover never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same handles, without any reconfiguration, reach the new master
    // (a call may fail while the old one steps down: it is retried here as
    // `mproc --retry-for` does).
    eventually("put after the failover", || q.try_put(b"c"));
    assert!(
        cli(replica.port, &["role"]).unwrap().starts_with("master"),
        "the writes went to the promoted replica"
    );
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| eventually("get", || q.get_timeout(Duration::from_secs(2))))
        .collect();
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    let g = eventually("lock", || lock.lock_timeout(Duration::from_secs(5)));
    assert!(g.fence().unwrap() > fence_before, "fencing continues");
    assert_eq!(g.fenced_add("pages", -1, 0).unwrap(), Some(4));
    drop(g);
    drop(master);
}

#[test]
#[ignore = "needs MPROC_TEST_REDIS_URL"]
fn killed_consumers_item_comes_back_within_about_two_seconds_by_default() {
    if !enabled() {
        return;
    }
    let srv = Server::start(&[]);
    let ns = srv.ns(""); // the default consumer_lease (2 s)
    let q = ByteQueue::create_in(&ns, "work", QueueOptions::new()).unwrap();
    q.put(b"job").unwrap();
    // Another consumer is already waiting (its heartbeat looks for dead
    // consumers at every beat).
    let other = ByteQueue::open_in(&ns, "work").unwrap();
    let mut child = Process::spawn(q.clone(), |q: ByteQueue| -> () {
        let _job = q.get().unwrap();
        std::thread::sleep(Duration::from_secs(600));
    })
    .unwrap();
    let deadline = Instant::now() + JOIN;
    while !q.is_empty() {
        assert!(Instant::now() < deadline, "the consumer never took the job");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let killed_at = Instant::now();
    let _ = child.join_timeout(JOIN);
    let got = other.get_timeout(JOIN).unwrap();
    let after = killed_at.elapsed();
    assert_eq!(got, b"job");
    // Its heartbeat lease (2 s from its last beat) had to run out first;
    // then a beat of the waiting consumer (every 2/3 s) took it back.
    assert!(after >= Duration::from_millis(1300), "after {after:?}");
    assert!(after <= Duration::from_millis(3500), "after {after:?}");
}

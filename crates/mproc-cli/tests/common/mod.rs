//! Helpers shared by the CLI tests: a private namespace per test, commands
//! with a watchdog, and background processes that are killed and reaped
//! when the test ends.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest any single command may run before the test fails.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(60);

/// The `mproc` binary under test.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mproc"))
}

/// Copies the binary to `to`, by a `cp` child: a copy written by this
/// process would leave its write descriptor for an instant in children that
/// other test threads fork meanwhile, and running the copy could then fail
/// with `ETXTBSY` ("Text file busy").
pub(crate) fn copy_bin(to: &Path) {
    let ok = std::process::Command::new("cp")
        .arg(bin())
        .arg(to)
        .status()
        .expect("cp runs")
        .success();
    assert!(ok, "cp {} {}", bin().display(), to.display());
}

/// A private namespace directory for one test.
pub(crate) struct Ns {
    /// The temporary directory (removed on drop).
    pub(crate) tmp: tempfile::TempDir,
}

impl Ns {
    /// A fresh namespace.
    pub(crate) fn new() -> Ns {
        Ns {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The namespace directory.
    pub(crate) fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// A path inside the temporary directory, for test files.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `mproc ARGS` in this namespace (through `MPROC_DIR`), with a watchdog.
    pub(crate) fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(bin());
        c.env("MPROC_DIR", self.dir())
            .env_remove("RUST_LOG")
            .timeout(WATCHDOG);
        c
    }

    /// A plain `std` command for `mproc ARGS` in this namespace.
    pub(crate) fn std_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("MPROC_DIR", self.dir())
            .env_remove("RUST_LOG");
        c
    }

    /// Starts `mproc ARGS` in the background (stdout piped, stdin and
    /// stderr null, so that its expected warnings and errors do not mix
    /// with the test output; default signal actions).
    pub(crate) fn spawn(&self, args: &[&str]) -> Bg {
        let mut c = self.std_cmd(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        default_signals(&mut c);
        Bg::spawn(&mut c)
    }

    /// Starts a `sh -c SCRIPT` in the background with `$M` set to the
    /// binary and `MPROC_DIR` to this namespace, running in the temp dir.
    pub(crate) fn sh(&self, script: &str) -> Bg {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(script)
            .env("M", bin())
            .env("MPROC_DIR", self.dir())
            .env_remove("RUST_LOG")
            .current_dir(self.dir())
            .stdin(Stdio::null());
        Bg::spawn(&mut c)
    }

    /// The queue's `stat` output as `key=value` pairs.
    pub(crate) fn stat(&self, queue: &str) -> Vec<(String, String)> {
        let out = self
            .cmd()
            .args(["queue", "stat", queue])
            .output()
            .expect("stat");
        assert!(out.status.success(), "stat failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One counter of `stat`.
    pub(crate) fn stat_of(&self, queue: &str, key: &str) -> u64 {
        self.stat(queue)
            .into_iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in stat"))
    }

    /// Waits (up to the watchdog) until `cond` holds.
    pub(crate) fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < WATCHDOG, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A background process, killed and reaped when dropped.
pub(crate) struct Bg {
    /// The child.
    pub(crate) child: Child,
}

impl Bg {
    /// Spawns `cmd` in a process group of its own, so that everything it
    /// starts can be killed with it.
    pub(crate) fn spawn(cmd: &mut Command) -> Bg {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Bg {
            child: cmd.spawn().expect("spawn"),
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to end, failing the test after the watchdog.
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                start.elapsed() < WATCHDOG,
                "process {} did not end",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for it to end and returns its status and stdout.
    pub(crate) fn finish(mut self) -> (ExitStatus, Vec<u8>) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut stdout = self.child.stdout.take();
        let reader = std::thread::spawn(move || {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out);
            }
            out
        });
        let st = self.wait();
        let out = reader.join().expect("reader");
        (st, out)
    }

    /// Sends `sig` to it.
    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the group is the
        // one this child leads (its members keep the id from being reused).
        unsafe { libc::kill(-(self.pid() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The pids of the children of `pid`, from `/proc`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if ppid_of(p) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
pub(crate) fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is gone or a zombie (dead but not reaped).
pub(crate) fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, a)| a.split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X"),
    }
}

/// Restores the default action of `SIGINT`, `SIGTERM` and `SIGHUP` in the
/// child, in case the tests run with them ignored (a background job, `nohup`).
pub(crate) fn default_signals(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // the async-signal-safe `signal`.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

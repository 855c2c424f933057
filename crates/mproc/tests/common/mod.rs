//! Shared helpers for the multi-process tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use mproc::{Namespace, Process, ProcessError};
use serde::{de::DeserializeOwned, Serialize};
use tempfile::TempDir;

/// A fresh private namespace; keep the TempDir alive for the test's length.
pub fn namespace() -> (TempDir, Namespace) {
    let dir = tempfile::Builder::new()
        .prefix("mproc-test-")
        .tempdir()
        .unwrap();
    let ns = Namespace::dir(dir.path()).unwrap();
    (dir, ns)
}

/// Runs `f` and returns its value with the time it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Asserts `d` is within `[want - 100 ms, want + slack]`, the CPython timing
/// tolerance (upper bound generous: the machine may be loaded).
pub fn assert_about(d: Duration, want: Duration) {
    let lo = want.saturating_sub(Duration::from_millis(100));
    let hi = want + Duration::from_millis(1500);
    assert!(d >= lo && d <= hi, "took {d:?}, expected about {want:?}");
}

/// Generous bound for a join in a test: a wedged child fails the test
/// instead of hanging it.
pub const JOIN: Duration = Duration::from_secs(60);

/// Runs `f(args)` in a child process and waits at most `timeout` for what
/// it returns; a child still running then is killed, so a wedged child fails
/// the test (with `ProcessError::Timeout`) instead of outliving it.
pub fn in_child<A, R>(args: A, f: fn(A) -> R, timeout: Duration) -> Result<R, ProcessError>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let mut p = Process::spawn(args, f).unwrap();
    let r = p.join_timeout(timeout);
    if r.is_err() {
        let _ = p.kill();
    }
    r
}

//! Child processes (this binary re-executed as `mproc-peers child ...`) and
//! the scratch paths the contenders share with them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn scratch_dir() -> PathBuf {
    let d = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    d
}

pub fn uniq(tag: &str) -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    scratch_dir()
        .join(format!("mproc-peers-{}-{}-{}", std::process::id(), tag, n))
        .to_string_lossy()
        .into_owned()
}

pub fn spawn_child(args: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// Wait for a child, require success, return what it printed.
pub fn finish_child_text(c: Child) -> String {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait for a child, require success, return the number it printed (0 if none).
pub fn finish_child(c: Child) -> u64 {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

pub fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

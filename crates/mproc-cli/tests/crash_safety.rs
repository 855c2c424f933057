//! Crash safety seen from the command line: damaged lock words, and what
//! killed runs leave behind.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::Ns;

/// Offset of a lock segment's robust lock word (see src/local/lock.rs).
const LOCK_WORD: u64 = 64;

fn patch_word(path: &std::path::Path, at: u64, v: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), at).unwrap();
}

#[test]
fn a_lock_word_naming_a_kernel_thread_is_taken_over() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "L", "--", "true"])
        .assert()
        .success();
    // Thread 2 is kthreadd: the kernel refuses it as a lock owner (EPERM);
    // no process can hold a lock as it, so the word is damage.
    patch_word(&ns.dir().join("L"), LOCK_WORD, 2);
    ns.cmd()
        .args(["lock", "-w", "3", "L", "--", "true"])
        .assert()
        .success();
}

#[test]
fn lock_break_frees_a_lock_held_by_a_live_stranger() {
    let ns = Ns::new();
    ns.cmd()
        .args(["lock", "L", "--", "true"])
        .assert()
        .success();
    // A live thread that never took the lock: the init process's.
    patch_word(&ns.dir().join("L"), LOCK_WORD, 1);
    ns.cmd()
        .args(["lock", "-n", "L", "--", "true"])
        .assert()
        .code(1);
    ns.cmd().args(["lock", "break", "L"]).assert().success();
    ns.cmd()
        .args(["lock", "-n", "L", "--", "true"])
        .assert()
        .success();
    // Breaking a lock that does not exist says so.
    ns.cmd().args(["lock", "break", "nope"]).assert().code(66);
}

#[test]
fn run_directories_of_dead_runs_are_removed_and_private() {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let runs = base.join(format!("mproc-runs-{uid}"));
    // A run killed before it could clean up: its creator is gone.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let left = runs.join(format!("mproc-demo-tickets-{pid}-12345-abcdef"));
    std::fs::create_dir_all(left.join("ns")).unwrap();
    let ns = Ns::new();
    ns.cmd()
        .args(["demo", "tickets", "--buyers", "2", "--tickets", "1"])
        .assert()
        .success();
    assert!(!left.exists(), "a dead run's directory was left: {left:?}");
    let mode = std::fs::metadata(&runs).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "runs directory mode {mode:o}");
}

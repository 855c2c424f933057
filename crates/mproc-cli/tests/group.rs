//! A group namespace: two real users in one group share a queue and a lock
//! through a setgid directory of that group; a third user, outside the
//! group, is refused (77), and a world-writable directory stays refused.
//!
//! The users and the group are created by the test (it needs root and
//! `useradd`; otherwise it says it was skipped) and removed at its end.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Users and a group made for the test, deleted when dropped.
struct Accounts {
    users: Vec<String>,
    group: String,
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("run");
    assert!(out.status.success(), "{c:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn id_of(args: &[&str]) -> u32 {
    ok(Command::new("id").args(args)).parse().unwrap()
}

/// `mproc ARGS` as `user`, in groups `groups` (none: only its own).
fn as_user(bin: &Path, dir: &Path, user: &str, groups: Option<u32>) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new("setpriv");
    c.arg(format!("--reuid={}", id_of(&["-u", user])))
        .arg(format!("--regid={}", id_of(&["-g", user])));
    match groups {
        Some(g) => c.arg(format!("--groups={g}")),
        None => c.arg("--clear-groups"),
    };
    c.arg("--")
        .arg(bin)
        .env("MPROC_DIR", dir)
        .env_remove("RUST_LOG")
        .env_remove("XDG_RUNTIME_DIR")
        .timeout(common::WATCHDOG);
    c
}

#[test]
fn two_users_of_a_group_share_a_namespace_and_others_are_refused() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || Command::new("useradd").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and useradd to create the test's users");
        return;
    }
    let tag = std::process::id() % 100_000;
    let acc = Accounts {
        users: ["a", "b", "c"]
            .iter()
            .map(|u| format!("mpt{u}{tag}"))
            .collect(),
        group: format!("mptg{tag}"),
    };
    ok(Command::new("groupadd").arg(&acc.group));
    let gid: u32 = ok(Command::new("getent").args(["group", &acc.group]))
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    for (i, u) in acc.users.iter().enumerate() {
        let mut c = Command::new("useradd");
        c.args(["-M", "-N", "-s", "/bin/false"]);
        if i < 2 {
            c.args(["-G", &acc.group]);
        }
        ok(c.arg(u));
    }
    let (a, b, c) = (&acc.users[0], &acc.users[1], &acc.users[2]);

    // A place every user can reach, with a copy of the binary they may run.
    let base = tempfile::Builder::new()
        .prefix("mproc-group-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let bin: PathBuf = base.path().join("mproc");
    common::copy_bin(&bin);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The shared namespace: owned by a, group-owned, setgid, 2770.
    let dir = base.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(id_of(&["-u", a])), Some(gid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).unwrap();

    // a creates a queue and puts; the object is 0660 with the group.
    as_user(&bin, &dir, a, Some(gid))
        .args(["queue", "create", "jobs"])
        .assert()
        .success();
    as_user(&bin, &dir, a, Some(gid))
        .args(["queue", "put", "jobs", "from a"])
        .assert()
        .success();
    let meta = std::fs::metadata(dir.join("jobs")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), gid);
    // b reads it, answers, and both take the same lock.
    as_user(&bin, &dir, b, Some(gid))
        .args(["queue", "get", "jobs"])
        .assert()
        .success()
        .stdout("from a");
    as_user(&bin, &dir, b, Some(gid))
        .args(["queue", "put", "jobs", "from b"])
        .assert()
        .success();
    as_user(&bin, &dir, b, Some(gid))
        .args(["lock", "printer", "--", "true"])
        .assert()
        .success();
    as_user(&bin, &dir, a, Some(gid))
        .args(["lock", "-n", "printer", "--", "true"])
        .assert()
        .success();
    as_user(&bin, &dir, a, Some(gid))
        .args(["queue", "get", "jobs"])
        .assert()
        .success()
        .stdout("from b");
    // c is not in the group: refused, 77.
    as_user(&bin, &dir, c, None)
        .args(["queue", "put", "jobs", "from c"])
        .assert()
        .code(77);
    // World-writable stays refused, for members too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2777)).unwrap();
    as_user(&bin, &dir, a, Some(gid))
        .args(["queue", "len", "jobs"])
        .assert()
        .code(77);
    // Without setgid, a group-writable directory is refused as before.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    as_user(&bin, &dir, a, Some(gid))
        .args(["queue", "len", "jobs"])
        .assert()
        .code(77);
}

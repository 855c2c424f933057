//! Objects are private to their user: the namespace directory is 0700, the
//! object files 0600, symbolic links are never followed, and a namespace
//! directory owned by someone else or writable by others is refused.
//!
//! The cross-user tests run as root (as CI does): the victim's objects are
//! made by root, and the attacker is this same test binary re-executed as
//! uid/gid 65534 (`nobody`) with `setpriv`, running the ignored test
//! `attacker` with its orders in the environment. They print a SKIPPED line
//! and pass when not root or when `setpriv` is missing.

mod common;

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{in_child, namespace};
use mproc::{
    ByteQueue, CreateError, Lock, Namespace, NamespaceError, OpenError, OpenOrCreateError, Process,
    QueueOptions,
};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chown(p: &Path, uid: u32, gid: u32) {
    let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; lchown does not follow links.
    let r = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    assert_eq!(
        r,
        0,
        "lchown {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
}

// ---------------------------------------------------------------------------
// Modes

fn modes_under_umask_zero(dir: String) -> (u32, u32, u32) {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0) };
    let ns = Namespace::dir(PathBuf::from(&dir).join("ns")).unwrap();
    drop(ByteQueue::create_in(&ns, "q", QueueOptions::new()).unwrap());
    drop(Lock::create_in(&ns, "l").unwrap());
    (
        mode(ns.path()),
        mode(&ns.path().join("q")),
        mode(&ns.path().join("l")),
    )
}

#[test]
fn namespace_is_0700_and_objects_0600_whatever_the_umask() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    let mut p = Process::spawn(dir, modes_under_umask_zero).unwrap();
    let (d, q, l) = p.join_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!((d, q, l), (0o700, 0o600, 0o600));
}

// ---------------------------------------------------------------------------
// Refused namespace directories

#[test]
fn writable_by_group_or_others_is_refused() {
    let (_d, ns) = namespace();
    let dir = ns.path().join("shared");
    fs::create_dir(&dir).unwrap();
    for m in [0o770, 0o702, 0o777, 0o1777, 0o720, 0o722] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(m)).unwrap();
        match Namespace::dir(&dir) {
            Err(NamespaceError::Insecure { mode, .. }) => assert_eq!(mode, m),
            other => panic!("mode {m:o}: {other:?}"),
        }
        // Through the object API too: nothing is made there.
        match Lock::create_in(&Namespace::dir(ns.path()).unwrap(), "fine-in-the-parent") {
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let _ = fs::remove_file(ns.path().join("fine-in-the-parent"));
    }
    // Read and search bits for others do not make it writable: accepted.
    for m in [0o700, 0o711, 0o750, 0o755] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(m)).unwrap();
        Namespace::dir(&dir).unwrap_or_else(|e| panic!("mode {m:o}: {e}"));
    }
}

#[test]
fn a_symlink_or_a_file_as_namespace_is_refused() {
    let (_d, ns) = namespace();
    let real = ns.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = ns.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    match Namespace::dir(&link) {
        Err(NamespaceError::NotADirectory(p)) => assert_eq!(p, link),
        other => panic!("{other:?}"),
    }
    let file = ns.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        Namespace::dir(&file),
        Err(NamespaceError::NotADirectory(_))
    ));
}

#[test]
fn a_namespace_owned_by_another_user_is_refused() {
    if !is_root() {
        return skip("a_namespace_owned_by_another_user_is_refused", "not root");
    }
    let (_d, ns) = namespace();
    // Someone else prepared the directory (a squatter on a predictable
    // path such as /dev/shm/mproc-0), even with a private mode.
    let dir = ns.path().join("squatted");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&dir, NOBODY, NOBODY);
    match Namespace::dir(&dir) {
        Err(NamespaceError::NotOwner { owner, me, .. }) => {
            assert_eq!((owner, me), (NOBODY, 0));
        }
        other => panic!("{other:?}"),
    }
    let e = Namespace::dir(&dir).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

// ---------------------------------------------------------------------------
// Symbolic links and special files in the namespace

#[test]
fn symlinks_named_like_objects_are_never_followed() {
    let (_d, ns) = namespace();
    let (_d2, elsewhere) = namespace();
    let target_q = ByteQueue::create_in(&elsewhere, "target-q", QueueOptions::new()).unwrap();
    target_q.put(b"secret").unwrap();
    drop(Lock::create_in(&elsewhere, "target-l").unwrap());
    let before = fs::read(elsewhere.path().join("target-q")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("target-q"), ns.path().join("q")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("target-l"), ns.path().join("l")).unwrap();
    let dangling = elsewhere.path().join("would-be-created");
    std::os::unix::fs::symlink(&dangling, ns.path().join("d")).unwrap();

    let e = ByteQueue::open_in(&ns, "q").unwrap_err();
    assert!(
        matches!(&e, OpenError::Damaged { reason, .. } if reason.contains("symbolic link")),
        "{e:?}"
    );
    assert!(matches!(
        Lock::open_in(&ns, "l"),
        Err(OpenError::Damaged { .. })
    ));
    // Creating over a link (live or dangling) fails; nothing is written
    // through it.
    assert!(matches!(
        ByteQueue::create_in(&ns, "q", QueueOptions::new()),
        Err(CreateError::AlreadyExists { .. })
    ));
    assert!(matches!(
        Lock::create_in(&ns, "d"),
        Err(CreateError::AlreadyExists { .. })
    ));
    assert!(matches!(
        ByteQueue::open_or_create_in(&ns, "d", QueueOptions::new()),
        Err(OpenOrCreateError::Open(OpenError::Damaged { .. }))
    ));
    assert!(
        !dangling.exists(),
        "a dangling link's target is never created"
    );
    assert_eq!(fs::read(elsewhere.path().join("target-q")).unwrap(), before);
    assert_eq!(target_q.try_get().unwrap(), b"secret");
    // The listing does not follow links either; removing removes the link.
    assert!(ns.list().unwrap().iter().all(|o| o.kind.is_none()));
    ns.remove("q").unwrap();
    assert!(elsewhere.path().join("target-q").exists());
}

#[test]
fn special_files_named_like_objects_are_refused_without_blocking() {
    let (_d, ns) = namespace();
    let fifo = CString::new(ns.path().join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let e = ByteQueue::open_in(&ns, "fifo").unwrap_err();
    assert!(
        matches!(&e, OpenError::Damaged { reason, .. } if reason.contains("not a regular file")),
        "{e:?}"
    );
    fs::create_dir(ns.path().join("dir")).unwrap();
    assert!(ByteQueue::open_in(&ns, "dir").is_err());
    if is_root() {
        // /dev/null's device numbers: opening it must not read a device.
        let dev = CString::new(ns.path().join("null").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; makedev(1, 3) is the null device.
        let r = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
        if r == 0 {
            let e = Lock::open_in(&ns, "null").unwrap_err();
            assert!(matches!(e, OpenError::Damaged { .. }), "{e:?}");
        } else {
            println!(
                "mknod not permitted here: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[test]
fn an_object_file_owned_by_another_user_is_refused_even_by_root() {
    if !is_root() {
        return skip(
            "an_object_file_owned_by_another_user_is_refused_even_by_root",
            "not root",
        );
    }
    // A file planted (or handed over) in a directory this process
    // controls, owned by someone else: opening it would let that user
    // change what this process reads. The owner check refuses it.
    let (_d, ns) = namespace();
    let q = ByteQueue::create_in(&ns, "q", QueueOptions::new()).unwrap();
    q.put(b"mine").unwrap();
    drop(Lock::create_in(&ns, "l").unwrap());
    chown(&ns.path().join("q"), NOBODY, NOBODY);
    chown(&ns.path().join("l"), NOBODY, NOBODY);
    match ByteQueue::open_in(&ns, "q") {
        Err(OpenError::PermissionDenied { name }) => assert_eq!(name, "q"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Lock::open_in(&ns, "l"),
        Err(OpenError::PermissionDenied { .. })
    ));
    assert!(matches!(
        ByteQueue::open_or_create_in(&ns, "q", QueueOptions::new()),
        Err(OpenOrCreateError::Open(OpenError::PermissionDenied { .. }))
    ));
    // Handles opened before the change keep working: the check is at open.
    assert_eq!(q.try_get().unwrap(), b"mine");
}

// ---------------------------------------------------------------------------
// A second, unprivileged user

/// Where the victim's objects live, reachable (searchable) by everyone up
/// to the namespace directory itself, and a copy of this test binary that
/// `nobody` may execute.
struct Arena {
    root: tempfile::TempDir,
    exe: PathBuf,
}

impl Arena {
    fn new() -> Option<Arena> {
        if !is_root() {
            skip("cross-user tests", "not root (they need to switch users)");
            return None;
        }
        if Command::new("setpriv").arg("--version").output().is_err() {
            skip("cross-user tests", "setpriv is not installed");
            return None;
        }
        let root = tempfile::Builder::new()
            .prefix("mproc-sec-")
            .tempdir_in(if Path::new("/dev/shm").is_dir() {
                Path::new("/dev/shm")
            } else {
                Path::new("/tmp")
            })
            .unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let exe = root.path().join("attacker");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        Some(Arena { root, exe })
    }

    /// Runs the `attacker` test as uid/gid 65534; returns its report lines.
    fn attack(&self, orders: &[(&str, &Path)]) -> Vec<String> {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&self.exe)
            .args([
                "--exact",
                "attacker",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/");
        for (k, v) in orders {
            c.env(k, v);
        }
        // The copied executable may still be open for writing in a child
        // forked by another test thread meanwhile (ETXTBSY): try again.
        let mut out = c.output().expect("run the attacker");
        for _ in 0..20 {
            if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            out = c.output().expect("run the attacker");
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "attacker failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = stdout
            .lines()
            // libtest may print "test attacker ... " on the same line.
            .filter_map(|l| l.find("ATTACK ").map(|i| l[i + 7..].to_owned()))
            .collect();
        assert!(
            lines.iter().any(|l| l == "done"),
            "attacker did not finish:\n{stdout}"
        );
        lines
    }
}

/// The attacker's side: every attempt is reported as `ATTACK what: outcome`.
#[test]
#[ignore = "run by the cross-user tests as uid 65534"]
fn attacker() {
    let Some(dir) = std::env::var_os("ATTACK_DIR").map(PathBuf::from) else {
        return;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    println!("ATTACK uid: {uid}");
    let report = |what: &str, r: Result<String, String>| match r {
        Ok(s) => println!("ATTACK {what}: ALLOWED {s}"),
        Err(e) => println!("ATTACK {what}: denied ({e})"),
    };
    let file = dir.join("jobs");
    report(
        "namespace",
        Namespace::dir(&dir)
            .map(|_| "opened".into())
            .map_err(|e| e.to_string()),
    );
    report(
        "list",
        fs::read_dir(&dir)
            .map(|d| format!("{} entries", d.count()))
            .map_err(|e| e.to_string()),
    );
    report(
        "read",
        fs::File::open(&file)
            .and_then(|mut f| {
                let mut v = Vec::new();
                f.read_to_end(&mut v).map(|n| format!("{n} bytes"))
            })
            .map_err(|e| e.to_string()),
    );
    report(
        "write",
        OpenOptions::new()
            .write(true)
            .open(&file)
            .map(|_| "opened for writing".into())
            .map_err(|e| e.to_string()),
    );
    report(
        "plant",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("planted"))
            .map(|_| "created a file".into())
            .map_err(|e| e.to_string()),
    );
    report(
        "symlink",
        std::os::unix::fs::symlink("/etc/shadow", dir.join("evil"))
            .map(|_| "made a link".into())
            .map_err(|e| e.to_string()),
    );
    report(
        "remove",
        fs::remove_file(&file)
            .map(|_| "removed".into())
            .map_err(|e| e.to_string()),
    );
    // Through the library, with a namespace of its own pointing at the
    // victim's files: a namespace of its own is fine, the victim's is not.
    if let Some(own) = std::env::var_os("ATTACK_OWN").map(PathBuf::from) {
        report(
            "own namespace",
            Namespace::dir(&own)
                .map(|_| "opened".into())
                .map_err(|e| e.to_string()),
        );
    }
    for (what, r) in [
        (
            "open queue",
            Namespace::dir(&dir)
                .map_err(OpenError::from)
                .and_then(|ns| ByteQueue::open_in(&ns, "jobs"))
                .map(|q| {
                    // Had it opened: steal, close, wake.
                    let got = q.try_get();
                    q.close();
                    format!("{got:?}")
                })
                .map_err(|e| e.to_string()),
        ),
        (
            "open lock",
            Namespace::dir(&dir)
                .map_err(OpenError::from)
                .and_then(|ns| Lock::open_in(&ns, "mutex"))
                .map(|l| format!("locked: {}", l.is_locked()))
                .map_err(|e| e.to_string()),
        ),
    ] {
        report(what, r);
    }
    println!("ATTACK done");
}

fn assert_all_denied(lines: &[String]) {
    assert!(lines.iter().any(|l| l == "uid: 65534"), "{lines:?}");
    for l in lines {
        assert!(
            !l.contains("ALLOWED"),
            "the attacker got through: {l}\n{lines:?}"
        );
    }
}

#[test]
fn another_user_can_neither_open_read_write_nor_signal_through_objects() {
    let Some(arena) = Arena::new() else { return };
    let dir = arena.root.path().join("victim");
    let ns = Namespace::dir(&dir).unwrap();
    let q = ByteQueue::create_in(&ns, "jobs", QueueOptions::new().maxsize(10)).unwrap();
    q.put(b"payroll").unwrap();
    let lock = Lock::create_in(&ns, "mutex").unwrap();
    let guard = lock.lock().unwrap();
    let before = q.stats();

    let home = arena.root.path().join("attacker-home");
    fs::create_dir(&home).unwrap();
    chown(&home, NOBODY, NOBODY);
    let own = home.join("ns");
    let lines = arena.attack(&[("ATTACK_DIR", &dir), ("ATTACK_OWN", &own)]);
    println!("{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("namespace: denied") && l.contains("owned by uid 0")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("own namespace: ALLOWED")),
        "an unprivileged user has namespaces of its own: {lines:?}"
    );
    let foreign: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("own namespace"))
        .cloned()
        .collect();
    assert_all_denied(&foreign);
    for what in ["list", "read", "write", "plant", "symlink", "remove"] {
        assert!(
            lines.iter().any(
                |l| l.starts_with(&format!("{what}: denied")) && l.contains("ermission denied")
            ),
            "{what}: {lines:?}"
        );
    }
    // Nothing changed on the victim's side: same message, not closed,
    // nobody woken, lock still held by us.
    let after = q.stats();
    assert_eq!(after, before);
    assert!(!q.is_closed());
    assert!(lock.is_locked());
    drop(guard);
    assert_eq!(q.try_get().unwrap(), b"payroll");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n == "planted" || n == "evil"),
        "{names:?}"
    );
}

#[test]
fn files_are_private_even_in_a_searchable_namespace() {
    // A namespace made searchable by others (0711, still accepted): the
    // files' own 0600 mode keeps them private.
    let Some(arena) = Arena::new() else { return };
    let dir = arena.root.path().join("victim711");
    let ns = Namespace::dir(&dir).unwrap();
    let q = ByteQueue::create_in(&ns, "jobs", QueueOptions::new()).unwrap();
    q.put(b"payroll").unwrap();
    drop(Lock::create_in(&ns, "mutex").unwrap());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).unwrap();
    Namespace::dir(&dir).expect("0711 is accepted");
    let lines = arena.attack(&[("ATTACK_DIR", &dir)]);
    println!("{lines:#?}");
    assert_all_denied(&lines);
    for what in ["read", "write"] {
        assert!(
            lines.iter().any(
                |l| l.starts_with(&format!("{what}: denied")) && l.contains("ermission denied")
            ),
            "{what}: {lines:?}"
        );
    }
    assert_eq!(q.len(), 1);
    assert!(!q.is_closed());
}

// ---------------------------------------------------------------------------
// A writer who rewrites a held lock's state.

/// In a child: takes `held`, lets a writer overwrite every byte of the lock's
/// state (offset 64 of a lock segment) with `fill`, releases, and takes the
/// lock again. Returns how the second acquisition went.
fn rewrite_state_while_held((dir, fill): (String, u8)) -> String {
    let ns = Namespace::dir(&dir).unwrap();
    let lock = Lock::open_or_create_in(&ns, "held").unwrap();
    let guard = lock.lock().unwrap_or_else(|e| e.into_guard().unwrap());
    let f = OpenOptions::new()
        .write(true)
        .open(ns.path().join("held"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[fill; 64], 64).unwrap();
    drop(guard);
    let how = match lock.lock_timeout(Duration::from_secs(5)) {
        Ok(_) => "clean".to_owned(),
        Err(mproc::LockError::OwnerDied(_)) => "owner died".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    how
}

#[test]
fn rewriting_a_held_lock_cannot_make_the_holder_write_elsewhere() {
    // The lock's shared state holds no pointer: whatever a writer puts there,
    // the holder's unlock touches only the lock's own words, and the lock
    // keeps working (at worst it reports a dead owner).
    let (_d, ns) = namespace();
    for fill in [0x41u8, 0xff, 0x00, 0x80, 0x7f] {
        let dir = ns.path().to_str().unwrap().to_owned();
        let how = in_child(
            (dir, fill),
            rewrite_state_while_held,
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("fill {fill:#x}: the holder did not survive: {e:?}"));
        println!("fill {fill:#x}: {how}");
        assert!(
            how == "clean" || how == "owner died",
            "fill {fill:#x}: lock after the damage: {how}"
        );
    }
}

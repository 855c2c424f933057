//! `mproc lock`: run a command while holding a named lock, shared (`-s`) or
//! exclusive, and `mproc lock status`.
//!
//! In a directory namespace a name is the library's robust [`RwLock`]
//! (made on first use; an existing [`Lock`] made by a program is used
//! exclusively), on a server it is a [`Lock`] (exclusive only). The lock is
//! held by this process's main thread while the command runs as its child.
//! Three things make the holding safe:
//!
//! * the child gets `PR_SET_PDEATHSIG = SIGKILL`, so it never outlives a
//!   killed `mproc lock` and never runs unprotected;
//! * if `mproc lock` is killed (even with `SIGKILL`), the kernel hands the
//!   robust lock to a sleeping waiter at once (a later locker sees the owner
//!   gone and takes it over);
//! * `SIGINT`, `SIGTERM` and `SIGHUP` are forwarded to the child, and the
//!   lock is released after the child has exited, whatever its status.
//!
//! With `-F` there is no child: the holding is kept until this process
//! exits ([`RwLockWriteGuard::keep_until_exit`]) and `mproc` execs the
//! command; the next holder waits for that process and is told of a clean
//! release, however it ends (see CLI.md).

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mproc::{
    CreateError, Lock, LockError, LockGuard, Namespace, ObjectKind, OpenError, OpenOrCreateError,
    RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use serde_json::json;

use crate::cli::{LockCmd, LockRunArgs, LockSub};
use crate::ctx::{self, age, fmt_secs, proc_cmdline, unix_secs, Ctx, Wait};
use crate::exit::{self, Failure};
use crate::retry::{io_transient, lock_transient, Outage};
use crate::signals;

/// Runs `mproc lock ...`.
pub(crate) fn run(ctx: &Ctx, args: LockCmd) -> anyhow::Result<u8> {
    match args.sub {
        Some(LockSub::Status { names }) => status(ctx, &names),
        Some(LockSub::Break { name }) => break_lock(ctx, &name),
        None if args.run.unlock => {
            let name = checked_name(&args.run)?;
            crate::hold::unlock(ctx, &name, args.run.pid)
        }
        None if args.run.hold => crate::hold::hold(ctx, &args.run),
        None => run_locked(ctx, args.run),
    }
}

/// Where `mproc lock` is, for the signal thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the lock: a signal ends `mproc` by that signal.
    Waiting,
    /// Starting the command: a signal is kept and sent once it runs.
    Spawning(Option<i32>),
    /// The command runs with this pid: signals are forwarded to it.
    Running(i32),
    /// The command has ended: signals are ignored while `mproc` exits.
    Done,
}

/// The current [`Phase`].
static PHASE: Mutex<Phase> = Mutex::new(Phase::Waiting);

/// Locks [`PHASE`] (a panic elsewhere does not stop signal handling).
fn phase() -> MutexGuard<'static, Phase> {
    PHASE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the signal thread: before the command runs, a terminating signal
/// ends `mproc` by that signal; once it runs, the signal is passed on to it
/// (unless it came from the terminal, which already sent it to the command).
fn start_signal_thread() -> std::io::Result<()> {
    signals::start(|sig, code| {
        let mut p = phase();
        match *p {
            Phase::Waiting => {
                drop(p);
                signals::die_by_signal(sig);
            }
            Phase::Spawning(None) => *p = Phase::Spawning(Some(sig)),
            Phase::Spawning(Some(_)) | Phase::Done => {}
            Phase::Running(_) if code == signals::SI_KERNEL => {
                tracing::debug!(sig, "signal from the terminal; the command has it too");
            }
            Phase::Running(child) => {
                tracing::debug!(sig, child, "forwarding signal");
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(child, sig) };
            }
        }
    })
}

/// The program and arguments to run: `CMD ARGS..`, or `$SHELL -c STRING`.
fn command_line(args: &LockRunArgs) -> Result<Vec<OsString>, Failure> {
    if let Some(s) = &args.shell {
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        return Ok(vec![shell, "-c".into(), s.clone()]);
    }
    if args.cmd.is_empty() {
        return Err(Failure::usage(
            "a command is required: mproc lock NAME -- CMD [ARGS..] or mproc lock NAME -c 'shell command'",
        ));
    }
    Ok(args.cmd.clone())
}

/// The lock a name stands for.
pub(crate) enum Target {
    /// A [`Lock`]: made by a program, or on a server (exclusive only).
    Lock(Lock),
    /// A readers-writer lock (what `mproc lock` makes in a directory).
    Rw(RwLock),
}

/// A holding of a [`Target`].
pub(crate) enum Held<'a> {
    /// Of a [`Lock`].
    Lock(LockGuard<'a>),
    /// A shared holding.
    Read(RwLockReadGuard<'a>),
    /// An exclusive holding of a readers-writer lock.
    Write(RwLockWriteGuard<'a>),
}

impl Held<'_> {
    /// Attaches a tag (exclusive holdings only).
    pub(crate) fn set_tag(&self, tag: &str) {
        match self {
            Held::Lock(g) => g.set_tag(tag),
            Held::Write(g) => g.set_tag(tag),
            Held::Read(_) => {}
        }
    }

    /// Records the holding's start where the lock does not by itself (a
    /// `Lock` acquired without waiting reads no clock).
    pub(crate) fn record_since(&self) {
        if let Held::Lock(g) = self {
            g.record_since();
        }
    }
}

/// The NAME argument, checked: a path or a descriptor number (flock(1)'s
/// other forms) gets an error that says what to write instead.
pub(crate) fn checked_name(args: &LockRunArgs) -> Result<String, Failure> {
    let Some(name) = args.name.clone() else {
        return Err(Failure::usage("the lock's NAME is required"));
    };
    if name.contains('/') {
        let base = std::path::Path::new(&name)
            .file_name()
            .and_then(|b| b.to_str())
            .filter(|b| mproc::validate_name(b).is_ok())
            .unwrap_or("app.lock");
        return Err(Failure::usage(format!(
            "'{name}' is a path: mproc locks are named, not files (a name lives in the \
             namespace, --dir/MPROC_DIR); write a name instead, e.g. mproc lock {base} -- CMD"
        )));
    }
    let no_command = args.cmd.is_empty() && args.shell.is_none();
    if no_command
        && !args.hold
        && !args.unlock
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Failure::usage(format!(
            "'{name}' looks like flock's descriptor form (flock -n {name}); mproc has no \
             descriptors: to lock the rest of a script, use mproc lock --hold --pid $$ NAME \
             (released when the script exits) and mproc unlock NAME"
        )));
    }
    mproc::validate_name(&name).map_err(|e| Failure::usage(format!("lock name: {e}")))?;
    Ok(name)
}

/// Opens (or makes) the lock `name` stands for in `ns`.
pub(crate) fn open_target(
    ns: &Namespace,
    name: &str,
    outage: &mut Outage,
) -> Result<Target, Failure> {
    if ns.is_remote() {
        return outage
            .run(
                || Lock::open_or_create_in(ns, name),
                |e| match e {
                    OpenOrCreateError::Open(OpenError::Io { source, .. })
                    | OpenOrCreateError::Create(CreateError::Io { source, .. }) => {
                        io_transient(source)
                    }
                    _ => None,
                },
            )
            .map(Target::Lock)
            .map_err(|e| exit::from_open_or_create(&e));
    }
    loop {
        match RwLock::open_in(ns, name) {
            Ok(l) => return Ok(Target::Rw(l)),
            Err(OpenError::WrongKind {
                found: ObjectKind::Lock,
                ..
            }) => {
                return Lock::open_in(ns, name)
                    .map(Target::Lock)
                    .map_err(|e| exit::from_open(&e))
            }
            Err(OpenError::NotFound { .. }) => match RwLock::create_in(ns, name) {
                Ok(l) => return Ok(Target::Rw(l)),
                Err(CreateError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(exit::from_create(&e)),
            },
            // A lock of either kind is what was expected.
            Err(OpenError::WrongKind { name, found, .. }) => {
                return Err(exit::from_open(&OpenError::WrongKind {
                    name,
                    expected: ObjectKind::Lock,
                    found,
                }))
            }
            Err(e) => return Err(exit::from_open(&e)),
        }
    }
}

/// Describes who holds `target`, for a conflict message.
pub(crate) fn holder_text(target: &Target) -> String {
    let (writer, readers) = match target {
        Target::Lock(l) => (l.holder(), Vec::new()),
        Target::Rw(l) => (l.writer(), l.readers()),
    };
    match writer {
        Some(h) if h.pid != 0 => {
            let cmd = proc_cmdline(h.pid).unwrap_or_else(|| "?".into());
            let tag = h.tag.map(|t| format!(" [{t}]")).unwrap_or_default();
            let held = h
                .since
                .map(|t| format!(" for {}", fmt_secs(age(t))))
                .unwrap_or_default();
            format!("is held by pid {} ({cmd}){tag}{held}", h.pid)
        }
        Some(_) => "is held (its holder is taking it right now)".into(),
        None if !readers.is_empty() => {
            let pids: Vec<String> = readers.iter().map(|r| r.pid.to_string()).collect();
            format!("is held shared by pid {}", pids.join(", "))
        }
        None if matches!(target, Target::Rw(l) if !l.waiting_writers().is_empty()) => {
            "has a writer waiting (writers go first)".into()
        }
        None => "was busy".into(),
    }
}

/// The outcome of one acquisition: the guard (`None` when it stayed busy),
/// with warnings about a previous holder that died.
fn settle<G>(r: Result<G, LockError<G>>, name: &str) -> Result<Option<G>, Failure> {
    match r {
        Ok(g) => Ok(Some(g)),
        Err(LockError::OwnerDied(o)) if o.previous_lease_expired() => {
            tracing::warn!(
                "lock '{name}': the previous holder's lease expired while it held it \
                 (it never released and may still be running); \
                 what it protects may be half-updated"
            );
            Ok(Some(o.into_inner()))
        }
        Err(LockError::OwnerDied(o)) => {
            tracing::warn!(
                "lock '{name}': its previous holder died while holding it; \
                 what it protects may be half-updated"
            );
            Ok(Some(o.into_inner()))
        }
        Err(LockError::WouldBlock) => Ok(None),
        Err(LockError::Io(e)) => Err(exit::from_io(
            &e,
            (exit::SOFTWARE, "internal"),
            &format!("lock '{name}'"),
        )),
        Err(e) => Err(Failure::internal(format!("lock '{name}': {e}"))),
    }
}

/// Acquires `target` (shared or not) as `wait` says; `None` when it stayed
/// busy. While waiting, server outages are ridden out as `outage` allows.
pub(crate) fn acquire<'a>(
    target: &'a Target,
    name: &str,
    shared: bool,
    wait: Wait,
    outage: &mut Outage,
) -> Result<Option<Held<'a>>, Failure> {
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    let left = move || deadline.map(|end| end.saturating_duration_since(Instant::now()));
    let never = matches!(wait, Wait::Never);
    match target {
        Target::Lock(_) if shared => Err(Failure::new(
            exit::DATAERR,
            "wrong_kind",
            format!(
                "lock '{name}' is exclusive only (a Lock made by a program, or a lock on a \
                 server): -s needs a lock made by mproc lock in a directory namespace"
            ),
        )),
        Target::Lock(l) => {
            let r = match left() {
                _ if never => l.try_lock(),
                Some(_) => outage.run(
                    || l.lock_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.lock(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Lock))
        }
        Target::Rw(l) if shared => {
            let r = match left() {
                _ if never => l.try_read(),
                Some(_) => outage.run(
                    || l.read_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.read(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Read))
        }
        Target::Rw(l) => {
            let r = match left() {
                _ if never => l.try_write(),
                Some(_) => outage.run(
                    || l.write_timeout(left().unwrap_or_default()),
                    lock_transient,
                ),
                None => outage.run(|| l.write(), lock_transient),
            };
            Ok(settle(r, name)?.map(Held::Write))
        }
    }
}

/// The failure of a lock that stayed busy (`-E`'s code), or the code alone
/// with `-q`.
pub(crate) fn busy(
    ctx: &Ctx,
    target: &Target,
    name: &str,
    wait: Wait,
    code: u8,
) -> anyhow::Result<u8> {
    if ctx.verbosity < 0 {
        return Ok(code);
    }
    let kind = if matches!(wait, Wait::Never) {
        "busy"
    } else {
        "timeout"
    };
    let msg = format!("lock '{name}' {}{}", holder_text(target), wait.gave_up());
    Err(Failure::new(code, kind, msg).into())
}

/// `mproc lock NAME -- CMD`.
fn run_locked(ctx: &Ctx, args: LockRunArgs) -> anyhow::Result<u8> {
    let name = checked_name(&args)?;
    if args.pid.is_some() {
        return Err(Failure::usage("--pid goes with --hold or -u/--unlock").into());
    }
    let argv = command_line(&args)?;
    let wait = Wait::from_flags(args.nonblock, args.wait);
    if args.tag.is_some() && args.shared {
        return Err(Failure::usage("--tag is kept for exclusive holdings only").into());
    }
    let ns = ctx.ns()?;
    if args.no_fork && ns.is_remote() {
        return Err(Failure::usage(
            "-F/--no-fork needs a directory namespace: a lock on a server is a lease that \
             mproc must keep renewing while the command runs (run without -F)",
        )
        .into());
    }
    if !args.no_fork {
        start_signal_thread()
            .map_err(|e| Failure::internal(format!("cannot set up signals: {e}")))?;
    }

    let mut outage = ctx.outage();
    let target = open_target(&ns, &name, &mut outage)?;
    if args.no_fork && matches!(target, Target::Lock(_)) {
        return Err(Failure::new(
            exit::DATAERR,
            "wrong_kind",
            format!(
                "lock '{name}' is a Lock made by a program: -F/--no-fork needs a lock made \
                 by mproc lock (run without -F)"
            ),
        )
        .into());
    }
    let started = Instant::now();
    let acquired = acquire(&target, &name, args.shared, wait, &mut outage)?;
    if acquired.is_some() && !args.no_fork {
        // From here on the command will run: signals are kept for it.
        *phase() = Phase::Spawning(None);
    }
    let Some(guard) = acquired else {
        if ctx.verbosity > 0 {
            let what = if matches!(wait, Wait::Never) {
                "failed to get lock"
            } else {
                "timeout while waiting to get lock"
            };
            tracing::info!("{what} '{name}'");
        }
        return busy(ctx, &target, &name, wait, args.conflict_exit_code);
    };
    match &args.tag {
        Some(tag) => guard.set_tag(tag),
        None => guard.record_since(),
    }
    tracing::info!(
        "lock '{name}' acquired after {} ({})",
        fmt_secs(started.elapsed()),
        if args.shared { "shared" } else { "exclusive" }
    );
    if args.no_fork {
        return exec_holding(guard, &argv, &name);
    }

    let status = spawn_and_wait(&argv, &guard);
    *phase() = Phase::Done;
    drop(guard);
    tracing::info!("lock '{name}' released");
    match status? {
        Ended::Exited(status) => Ok(exit::child_code(status)),
        Ended::LeaseLost { term, killed } => {
            let how = if killed {
                "killed (SIGKILL) after it ignored SIGTERM"
            } else {
                "terminated (SIGTERM)"
            };
            let msg = format!(
                "lock '{name}': the lease was lost (no renewal reached the server in time); \
                 the command was {how} {} before the lease would expire",
                fmt_secs(term)
            );
            Err(Failure::new(exit::TEMPFAIL, "lease_lost", msg).into())
        }
    }
}

/// `-F`: keeps the holding until this process exits, and becomes the
/// command. Returns only if the exec failed (the holding then ends with
/// this process's exit).
fn exec_holding(guard: Held<'_>, argv: &[OsString], name: &str) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt;
    let kept = match guard {
        Held::Write(g) => g.keep_until_exit(),
        Held::Read(g) => g.keep_until_exit(),
        Held::Lock(_) => Err(std::io::Error::other("a Lock cannot be kept across exec")),
    };
    kept.map_err(|e| Failure::internal(format!("lock '{name}': {e}")))?;
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::usage("empty command"))?;
    tracing::info!("executing {:?}", argv);
    let e = Command::new(prog).args(rest).exec();
    Err(Failure::new(
        exit::UNAVAILABLE,
        "unavailable",
        format!("cannot run '{}': {e}", prog.to_string_lossy()),
    )
    .into())
}

/// How the command ended.
enum Ended {
    /// By itself (or by a signal not sent by `mproc lock`).
    Exited(std::process::ExitStatus),
    /// Terminated because the lease was about to run out: `term` before the
    /// lease's end by this process's clock; `killed` if SIGKILL was needed.
    LeaseLost { term: Duration, killed: bool },
}

/// When to stop a command whose lease is no longer renewed: SIGTERM at
/// `grace + margin` before the lease would run out, SIGKILL at `margin`
/// before it. Both are fractions of the lease (measured right after the
/// grant), capped at 1 s and 0.5 s.
fn stop_times(lease: Duration) -> (Duration, Duration) {
    let grace = (lease / 5).min(Duration::from_secs(1));
    let margin = (lease / 10).min(Duration::from_millis(500));
    (grace, margin)
}

/// Waits for `child`; with a lease (a lock on a server), stops it before
/// the lease would run out unless renewals keep it valid.
fn wait_within_lease(child: &mut std::process::Child, guard: &Held<'_>) -> Result<Ended, Failure> {
    let waited = |e: std::io::Error| Failure::internal(format!("waiting for the command: {e}"));
    let Held::Lock(guard) = guard else {
        return child.wait().map(Ended::Exited).map_err(waited);
    };
    let Some(first) = guard.lease_valid_until() else {
        return child.wait().map(Ended::Exited).map_err(waited);
    };
    let (grace, margin) = stop_times(first.saturating_duration_since(Instant::now()));
    const POLL: Duration = Duration::from_millis(20);
    loop {
        if let Some(s) = child.try_wait().map_err(waited)? {
            return Ok(Ended::Exited(s));
        }
        let until = guard.lease_valid_until().unwrap_or_else(Instant::now);
        let term_at = until.checked_sub(grace + margin).unwrap_or(until);
        let now = Instant::now();
        if now < term_at && guard.lease_valid() {
            std::thread::sleep(POLL.min(term_at - now));
            continue;
        }
        let pid = child.id() as i32;
        let term = until.saturating_duration_since(Instant::now());
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let kill_at = until.checked_sub(margin).unwrap_or(until);
        loop {
            if child.try_wait().map_err(waited)?.is_some() {
                return Ok(Ended::LeaseLost {
                    term,
                    killed: false,
                });
            }
            let now = Instant::now();
            if now >= kill_at {
                break;
            }
            std::thread::sleep(Duration::from_millis(5).min(kill_at - now));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        child.wait().map_err(waited)?;
        return Ok(Ended::LeaseLost { term, killed: true });
    }
}

/// Runs the command as a child that dies with this process, and waits for
/// it (stopping it before the lock's lease would run out).
fn spawn_and_wait(argv: &[OsString], guard: &Held<'_>) -> Result<Ended, Failure> {
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::usage("empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(rest);
    signals::die_with_parent(&mut cmd, true);
    tracing::info!("executing {:?}", argv);
    let spawned = cmd.spawn();
    let pending = {
        let mut p = phase();
        let pending = match *p {
            Phase::Spawning(s) => s,
            _ => None,
        };
        *p = match &spawned {
            Ok(c) => Phase::Running(c.id() as i32),
            Err(_) => Phase::Done,
        };
        pending
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            if let Some(sig) = pending {
                signals::die_by_signal(sig);
            }
            return Err(Failure::new(
                exit::UNAVAILABLE,
                "unavailable",
                format!("cannot run '{}': {e}", prog.to_string_lossy()),
            ));
        }
    };
    if let Some(sig) = pending {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, sig) };
    }
    wait_within_lease(&mut child, guard)
}

/// One lock's state, for `status`.
struct LockRow {
    /// The lock's name.
    name: String,
    /// The lock handle.
    lock: Target,
}

/// Opens an existing lock of either kind (never creates one).
pub(crate) fn open_existing(ns: &Namespace, name: &str) -> Result<Target, Failure> {
    match RwLock::open_in(ns, name) {
        Ok(l) => Ok(Target::Rw(l)),
        Err(OpenError::WrongKind {
            found: ObjectKind::Lock,
            ..
        }) => Lock::open_in(ns, name)
            .map(Target::Lock)
            .map_err(|e| exit::from_open(&e)),
        Err(OpenError::WrongKind { name, found, .. }) => {
            Err(exit::from_open(&OpenError::WrongKind {
                name,
                expected: ObjectKind::Lock,
                found,
            }))
        }
        Err(e) => Err(exit::from_open(&e)),
    }
}

/// `mproc lock break NAME`.
fn break_lock(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let target = open_existing(&ns, name)?;
    let writer = match &target {
        Target::Lock(l) => l.holder(),
        Target::Rw(l) => l.writer(),
    };
    if let Some(h) = writer.filter(|h| h.pid != 0) {
        tracing::warn!("lock '{name}': pid {} held it; it no longer does", h.pid);
    }
    let r = match &target {
        Target::Lock(l) => l.force_release(),
        Target::Rw(l) => l.force_release(),
    };
    r.map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &format!("lock '{name}'")))?;
    if ctx.json {
        println!("{}", serde_json::json!({ "lock": name, "released": true }));
    } else if ctx.verbosity >= 0 {
        eprintln!("mproc: lock '{name}' released");
    }
    Ok(0)
}

/// `mproc lock status [NAME..]`.
fn status(ctx: &Ctx, names: &[String]) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut rows = Vec::new();
    if names.is_empty() {
        let list = ns
            .list()
            .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &ns.location()))?;
        for info in list {
            if !matches!(info.kind, Some(ObjectKind::Lock | ObjectKind::RwLock)) {
                continue;
            }
            // A lock removed since the listing is simply skipped.
            if let Ok(lock) = open_existing(&ns, &info.name) {
                rows.push(LockRow {
                    name: info.name,
                    lock,
                });
            }
        }
    } else {
        for name in names {
            let lock = open_existing(&ns, name)?;
            rows.push(LockRow {
                name: name.clone(),
                lock,
            });
        }
    }

    if ctx.json {
        let locks: Vec<_> = rows.iter().map(lock_json).collect();
        ctx::out_json(&json!({"dir": ns.location(), "locks": locks}))?;
        return Ok(exit::OK);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = View::of(&r.lock);
            let waiters = v.waiters_text();
            let readers = if v.readers.is_empty() {
                "-".to_string()
            } else {
                let pids: Vec<String> = v.readers.iter().map(|r| r.pid.to_string()).collect();
                format!("{} ({})", v.readers.len(), pids.join(" "))
            };
            match (&v.writer, v.readers.first()) {
                (Some(h), _) => vec![
                    r.name.clone(),
                    "held".into(),
                    h.pid.to_string(),
                    h.since.map_or_else(|| "?".into(), |t| fmt_secs(age(t))),
                    proc_cmdline(h.pid).unwrap_or_else(|| "?".into()),
                    h.tag.clone().unwrap_or_else(|| "-".into()),
                    waiters,
                    readers,
                ],
                (None, Some(first)) => vec![
                    r.name.clone(),
                    "shared".into(),
                    first.pid.to_string(),
                    fmt_secs(age(first.since)),
                    proc_cmdline(first.pid).unwrap_or_else(|| "?".into()),
                    "-".into(),
                    waiters,
                    readers,
                ],
                (None, None) => vec![
                    r.name.clone(),
                    "free".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    waiters,
                    readers,
                ],
            }
        })
        .collect();
    ctx::out_table(
        ctx,
        &[
            "NAME", "STATE", "PID", "HELD", "COMMAND", "TAG", "WAITERS", "READERS",
        ],
        &table,
    )?;
    Ok(exit::OK)
}

/// What a lock shows: its exclusive holder, its shared holders, the
/// writers (or exclusive lockers) waiting and how many wait to read.
struct View {
    writer: Option<mproc::Holder>,
    readers: Vec<mproc::Reader>,
    waiters: Vec<mproc::Waiter>,
    waiting_readers: u32,
}

impl View {
    fn of(t: &Target) -> View {
        match t {
            Target::Lock(l) => View {
                writer: l.holder(),
                readers: Vec::new(),
                waiters: l.waiters(),
                waiting_readers: 0,
            },
            Target::Rw(l) => View {
                writer: l.writer(),
                readers: l.readers(),
                waiters: l.waiting_writers(),
                waiting_readers: l.waiting_readers(),
            },
        }
    }

    /// `N (PIDS)` for the waiting writers, `+M shared` for waiting readers.
    fn waiters_text(&self) -> String {
        let mut parts = Vec::new();
        if !self.waiters.is_empty() {
            let pids: Vec<String> = self.waiters.iter().map(|w| w.pid.to_string()).collect();
            parts.push(format!("{} ({})", self.waiters.len(), pids.join(" ")));
        }
        if self.waiting_readers > 0 {
            parts.push(format!("+{} shared", self.waiting_readers));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

/// One lock as JSON.
fn lock_json(r: &LockRow) -> serde_json::Value {
    let v = View::of(&r.lock);
    let holder = v.writer.as_ref().map(|h| {
        json!({
            "pid": h.pid,
            "command": proc_cmdline(h.pid),
            "since": h.since.map(unix_secs),
            "held_s": h.since.map(|t| age(t).as_secs_f64()),
            "tag": h.tag,
        })
    });
    let readers: Vec<_> = v
        .readers
        .iter()
        .map(|x| {
            json!({
                "pid": x.pid,
                "command": proc_cmdline(x.pid),
                "since": unix_secs(x.since),
                "held_s": age(x.since).as_secs_f64(),
            })
        })
        .collect();
    let waiters: Vec<_> = v
        .waiters
        .iter()
        .map(|w| {
            json!({
                "pid": w.pid,
                "command": proc_cmdline(w.pid),
                "since": unix_secs(w.since),
                "waiting_s": age(w.since).as_secs_f64(),
            })
        })
        .collect();
    let (kind, mode) = match (&r.lock, &v.writer, readers.is_empty()) {
        (Target::Lock(_), Some(_), _) => ("lock", Some("exclusive")),
        (Target::Lock(_), None, _) => ("lock", None),
        (Target::Rw(_), Some(_), _) => ("rwlock", Some("exclusive")),
        (Target::Rw(_), None, false) => ("rwlock", Some("shared")),
        (Target::Rw(_), None, true) => ("rwlock", None),
    };
    json!({
        "name": r.name,
        "kind": kind,
        "held": mode.is_some(),
        "mode": mode,
        "holder": holder,
        "readers": readers,
        "waiters": waiters,
        "waiting_readers": v.waiting_readers,
    })
}

/// A lock's one-line summary for `mproc ls`: state and waiters.
pub(crate) fn summary(lock: &Target) -> (String, String) {
    let v = View::of(lock);
    let state = match (&v.writer, v.readers.is_empty()) {
        (Some(h), _) => match h.since {
            Some(t) => format!("held by {} for {}", h.pid, fmt_secs(age(t))),
            None => format!("held by {}", h.pid),
        },
        (None, false) => {
            let pids: Vec<String> = v.readers.iter().map(|r| r.pid.to_string()).collect();
            format!("shared by {} ({})", v.readers.len(), pids.join(" "))
        }
        (None, true) => "free".into(),
    };
    let w = v.waiters.len() + v.waiting_readers as usize;
    (state, if w == 0 { "-".into() } else { w.to_string() })
}

/// A lock as JSON, for `mproc ls --json`.
pub(crate) fn ls_json(name: &str, lock: Target) -> serde_json::Value {
    lock_json(&LockRow {
        name: name.to_string(),
        lock,
    })
}

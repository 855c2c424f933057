//! `mproc lock`: run a command while holding a named lock, and `mproc lock
//! status`.
//!
//! The lock is the library's robust [`Lock`], held by this process's main
//! thread while the command runs as its child. Three things make the
//! holding safe:
//!
//! * the child gets `PR_SET_PDEATHSIG = SIGKILL`, so it never outlives a
//!   killed `mproc lock` and never runs unprotected;
//! * if `mproc lock` is killed (even with `SIGKILL`), the kernel hands the
//!   robust lock to a sleeping waiter at once (a later locker sees the owner
//!   gone and takes it over);
//! * `SIGINT`, `SIGTERM` and `SIGHUP` are forwarded to the child, and the
//!   lock is released after the child has exited, whatever its status.

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mproc::{CreateError, Lock, LockError, LockGuard, ObjectKind, OpenError, OpenOrCreateError};
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

/// Describes who holds `lock`, for a conflict message.
fn holder_text(lock: &Lock) -> String {
    match lock.holder() {
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
        None => "was busy".into(),
    }
}

/// Acquires `lock` as `wait` says; `None` when it stayed busy. While
/// waiting, server outages are ridden out as `outage` allows.
fn acquire<'a>(
    lock: &'a Lock,
    name: &str,
    wait: Wait,
    outage: &mut Outage,
) -> Result<Option<LockGuard<'a>>, Failure> {
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    let r = match (wait, deadline) {
        // Without waiting, there is nothing to ride out.
        (Wait::Never, _) => lock.try_lock(),
        (Wait::For(_), Some(end)) => outage.run(
            || lock.lock_timeout(end.saturating_duration_since(Instant::now())),
            lock_transient,
        ),
        _ => outage.run(|| lock.lock(), lock_transient),
    };
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

/// `mproc lock NAME -- CMD`.
fn run_locked(ctx: &Ctx, args: LockRunArgs) -> anyhow::Result<u8> {
    let Some(name) = args.name.clone() else {
        return Err(Failure::usage("the lock's NAME is required").into());
    };
    let argv = command_line(&args)?;
    let wait = Wait::from_flags(args.nonblock, args.wait);
    start_signal_thread().map_err(|e| Failure::internal(format!("cannot set up signals: {e}")))?;

    let ns = ctx.ns()?;
    let mut outage = ctx.outage();
    let lock = outage
        .run(
            || Lock::open_or_create_in(&ns, &name),
            |e| match e {
                OpenOrCreateError::Open(OpenError::Io { source, .. })
                | OpenOrCreateError::Create(CreateError::Io { source, .. }) => io_transient(source),
                _ => None,
            },
        )
        .map_err(|e| exit::from_open_or_create(&e))?;
    let started = Instant::now();
    let acquired = acquire(&lock, &name, wait, &mut outage)?;
    if acquired.is_some() {
        // From here on the command will run: signals are kept for it.
        *phase() = Phase::Spawning(None);
    }
    let Some(guard) = acquired else {
        let code = args.conflict_exit_code;
        if ctx.verbosity < 0 {
            return Ok(code);
        }
        let kind = if matches!(wait, Wait::Never) {
            "busy"
        } else {
            "timeout"
        };
        let msg = format!("lock '{name}' {}{}", holder_text(&lock), wait.gave_up());
        return Err(Failure::new(code, kind, msg).into());
    };
    match &args.tag {
        Some(tag) => guard.set_tag(tag),
        None => guard.record_since(),
    }
    tracing::info!(
        "lock '{name}' acquired after {}",
        fmt_secs(started.elapsed())
    );

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
fn wait_within_lease(
    child: &mut std::process::Child,
    guard: &LockGuard<'_>,
) -> Result<Ended, Failure> {
    let waited = |e: std::io::Error| Failure::internal(format!("waiting for the command: {e}"));
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
fn spawn_and_wait(argv: &[OsString], guard: &LockGuard<'_>) -> Result<Ended, Failure> {
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
    lock: Lock,
}

/// `mproc lock status [NAME..]`.
/// `mproc lock break NAME`.
fn break_lock(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let lock = Lock::open_in(&ns, name).map_err(|e| exit::from_open(&e))?;
    if let Some(h) = lock.holder().filter(|h| h.pid != 0) {
        tracing::warn!("lock '{name}': pid {} held it; it no longer does", h.pid);
    }
    lock.force_release()
        .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &format!("lock '{name}'")))?;
    if ctx.json {
        println!("{}", serde_json::json!({ "lock": name, "released": true }));
    } else if ctx.verbosity >= 0 {
        eprintln!("mproc: lock '{name}' released");
    }
    Ok(0)
}

fn status(ctx: &Ctx, names: &[String]) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut rows = Vec::new();
    if names.is_empty() {
        let list = ns
            .list()
            .map_err(|e| exit::from_io(&e, (exit::SOFTWARE, "internal"), &ns.location()))?;
        for info in list {
            if info.kind != Some(ObjectKind::Lock) {
                continue;
            }
            // A lock removed since the listing is simply skipped.
            if let Ok(lock) = Lock::open_in(&ns, &info.name) {
                rows.push(LockRow {
                    name: info.name,
                    lock,
                });
            }
        }
    } else {
        for name in names {
            let lock = Lock::open_in(&ns, name).map_err(|e| exit::from_open(&e))?;
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
            let holder = r.lock.holder();
            let waiters = r.lock.waiters();
            let waiters = if waiters.is_empty() {
                "-".to_string()
            } else {
                let pids: Vec<String> = waiters.iter().map(|w| w.pid.to_string()).collect();
                format!("{} ({})", waiters.len(), pids.join(" "))
            };
            match holder {
                Some(h) => vec![
                    r.name.clone(),
                    "held".into(),
                    h.pid.to_string(),
                    h.since.map_or_else(|| "?".into(), |t| fmt_secs(age(t))),
                    proc_cmdline(h.pid).unwrap_or_else(|| "?".into()),
                    h.tag.unwrap_or_else(|| "-".into()),
                    waiters,
                ],
                None => vec![
                    r.name.clone(),
                    "free".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    waiters,
                ],
            }
        })
        .collect();
    ctx::out_table(
        ctx,
        &["NAME", "STATE", "PID", "HELD", "COMMAND", "TAG", "WAITERS"],
        &table,
    )?;
    Ok(exit::OK)
}

/// One lock as JSON.
fn lock_json(r: &LockRow) -> serde_json::Value {
    let holder = r.lock.holder().map(|h| {
        json!({
            "pid": h.pid,
            "command": proc_cmdline(h.pid),
            "since": h.since.map(unix_secs),
            "held_s": h.since.map(|t| age(t).as_secs_f64()),
            "tag": h.tag,
        })
    });
    let waiters: Vec<_> = r
        .lock
        .waiters()
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
    json!({"name": r.name, "kind": "lock", "held": holder.is_some(), "holder": holder, "waiters": waiters})
}

/// A lock's one-line summary for `mproc ls`: state and waiters.
pub(crate) fn summary(lock: &Lock) -> (String, String) {
    let state = match lock.holder() {
        Some(h) => match h.since {
            Some(t) => format!("held by {} for {}", h.pid, fmt_secs(age(t))),
            None => format!("held by {}", h.pid),
        },
        None => "free".into(),
    };
    let w = lock.waiters().len();
    (state, if w == 0 { "-".into() } else { w.to_string() })
}

/// A lock as JSON, for `mproc ls --json`.
pub(crate) fn ls_json(name: &str, lock: &Lock) -> serde_json::Value {
    lock_json(&LockRow {
        name: name.to_string(),
        lock: lock.clone(),
    })
}

//! `mproc lock NAME -- CMD` (and `-c`, `-F`): the command runs as a child
//! while this process holds the lock, with signals forwarded to it, or with
//! `-F` this process becomes the command.

use std::ffi::OsString;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::target::{acquire, busy, open_target, Held, Target};
use super::{checked_name, LockRunArgs};
use crate::args::fmt_secs;
use crate::ctx::{Ctx, Wait};
use crate::exit::{self, Failure};
use crate::signals;
use crate::sys;

/// Where `mproc lock` is, for the signal thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the lock: a signal ends `mproc` by that signal.
    Waiting,
    /// Starting the command: a signal is kept and sent once it runs.
    Spawning(Option<i32>),
    /// The command runs with this pid: signals are forwarded to it.
    Running(u32),
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
                sys::send_signal(child, sig);
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

/// `mproc lock NAME -- CMD`.
pub(super) fn run_locked(ctx: &Ctx, args: LockRunArgs) -> anyhow::Result<u8> {
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
        let pid = child.id();
        let term = until.saturating_duration_since(Instant::now());
        sys::send_signal(pid, sys::SIGTERM);
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
        sys::send_signal(pid, sys::SIGKILL);
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
            Ok(c) => Phase::Running(c.id()),
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
        sys::send_signal(child.id(), sig);
    }
    wait_within_lease(&mut child, guard)
}

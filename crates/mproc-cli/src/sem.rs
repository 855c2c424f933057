//! `mproc sem NAME -j N -- CMD`: run a command while holding one of the N
//! units of a named semaphore, so that at most N such commands run at once
//! (GNU `sem` / `parallel --semaphore` letters).
//!
//! The unit is held through a [`mproc::SemaphoreGuard`]: if `mproc sem` is
//! killed (even with `SIGKILL`), the command dies with it
//! (`PR_SET_PDEATHSIG`) and the unit is returned to the next process that
//! waits — at once if it is already waiting. `SIGINT`, `SIGTERM` and
//! `SIGHUP` are forwarded to the command while it runs.

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use clap::Args;
use mproc::{BoundedSemaphore, CreateError, Namespace, OpenError, Semaphore, SemaphoreError};

use crate::args::{fmt_secs, parse_secs, Secs, TrailingCommand};
use crate::ctx::{Ctx, Wait};
use crate::exit::{self, Failure};
use crate::signals;
use crate::sys;

/// `mproc sem`.
#[derive(Debug, Args)]
#[command(
    after_help = crate::exit::TABLE,
    override_usage = "mproc sem [-j N] [-n | -w SECS] NAME -- CMD [ARGS]..."
)]
pub(crate) struct SemArgs {
    /// Units of the semaphore: at most N commands hold one at once (used
    /// when the semaphore is created, default 1; an existing one keeps its
    /// own N, with a warning when it differs).
    #[arg(
        short = 'j',
        long = "jobs",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub(crate) jobs: Option<u32>,
    /// Fail at once (exit 1, or -E) when no unit is free.
    #[arg(short = 'n', long = "nonblock", conflicts_with = "wait")]
    pub(crate) nonblock: bool,
    /// Give up after SECS (2.5, 500ms, 2s, 1m, 1.5h; 0 = -n; "inf" = wait forever).
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", value_name = "SECS",
          value_parser = parse_secs)]
    pub(crate) wait: Option<Secs>,
    /// Exit code when no unit was free in time (0..255).
    #[arg(short = 'E', long = "conflict-exit-code", value_name = "N",
          default_value_t = crate::exit::BUSY, value_parser = clap::value_parser!(u8))]
    pub(crate) conflict_exit_code: u8,
    /// The semaphore's name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The command and its arguments.
    #[command(flatten)]
    pub(crate) command: TrailingCommand,
}

/// The command's pid while it runs, 0 before, -1 after.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Runs `mproc sem ...`.
pub(crate) fn run(ctx: &Ctx, args: &SemArgs) -> anyhow::Result<u8> {
    let wait = Wait::from_flags(args.nonblock, args.wait);
    signals::start(|sig, code| match CHILD.load(Ordering::SeqCst) {
        0 => signals::die_by_signal(sig),
        -1 => {}
        // Ctrl-C from the terminal already reached the command.
        _ if code == signals::SI_KERNEL => {}
        pid => sys::send_signal(pid as u32, sig),
    })
    .map_err(|e| Failure::internal(format!("cannot set up signals: {e}")))?;

    let ns = ctx.ns()?;
    let name = &args.name;
    let sem = open_or_create(&ns, name, args.jobs.unwrap_or(1))?;
    if let (Some(j), Some(b)) = (args.jobs, sem.bound()) {
        if j != b {
            tracing::warn!("semaphore '{name}' exists with {b} units; -j {j} is ignored");
        }
    }
    let started = Instant::now();
    let r = match wait {
        Wait::Forever => sem.hold(),
        Wait::Never => sem.try_hold(),
        Wait::For(d) => sem.hold_timeout(d),
    };
    let guard = match r {
        Ok(g) => g,
        Err(SemaphoreError::WouldBlock) => {
            let code = args.conflict_exit_code;
            if ctx.verbosity < 0 {
                return Ok(code);
            }
            let holders: Vec<String> = sem
                .holders()
                .iter()
                .map(|(pid, _, _)| pid.to_string())
                .collect();
            let kind = if matches!(wait, Wait::Never) {
                "busy"
            } else {
                "timeout"
            };
            let msg = format!(
                "semaphore '{name}': no unit free (held by pids {}){}",
                if holders.is_empty() {
                    "-".to_string()
                } else {
                    holders.join(" ")
                },
                wait.gave_up()
            );
            return Err(Failure::new(code, kind, msg).into());
        }
        Err(e) => return Err(Failure::internal(format!("semaphore '{name}': {e}")).into()),
    };
    tracing::info!(
        "semaphore '{name}': unit taken after {}",
        fmt_secs(started.elapsed())
    );
    let status = spawn_and_wait(&args.command.cmd);
    CHILD.store(-1, Ordering::SeqCst);
    drop(guard);
    Ok(exit::child_code(status?))
}

/// Opens the semaphore, or creates it bounded to `jobs` units.
fn open_or_create(ns: &Namespace, name: &str, jobs: u32) -> Result<Semaphore, Failure> {
    loop {
        match Semaphore::open_in(ns, name) {
            Ok(s) => return Ok(s),
            Err(OpenError::NotFound { .. }) => {}
            Err(e) => return Err(exit::from_open(&e)),
        }
        match BoundedSemaphore::create_in(ns, name, jobs) {
            Ok(b) => return Ok(b.as_semaphore().clone()),
            Err(CreateError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(exit::from_create(&e)),
        }
    }
}

/// Runs the command as a child that dies with this process, and waits.
fn spawn_and_wait(argv: &[std::ffi::OsString]) -> Result<std::process::ExitStatus, Failure> {
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::usage("a command is required: mproc sem NAME -- CMD"))?;
    let mut cmd = Command::new(prog);
    cmd.args(rest);
    signals::die_with_parent(&mut cmd, true);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::new(
            exit::UNAVAILABLE,
            "unavailable",
            format!("cannot run '{}': {e}", prog.to_string_lossy()),
        )
    })?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    child
        .wait()
        .map_err(|e| Failure::internal(format!("waiting for the command: {e}")))
}

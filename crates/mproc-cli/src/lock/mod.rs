//! `mproc lock`: run a command while holding a named lock, shared (`-s`) or
//! exclusive, and `mproc lock status`.
//!
//! In a directory namespace a name is the library's robust
//! [`RwLock`](mproc::RwLock) (made on first use; an existing
//! [`Lock`](mproc::Lock) made by a program is used exclusively), on a
//! server it is a [`Lock`](mproc::Lock) (exclusive only). The lock is
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
//! exits
//! ([`RwLockWriteGuard::keep_until_exit`](mproc::RwLockWriteGuard::keep_until_exit))
//! and `mproc` execs the command; the next holder waits for that process
//! and is told of a clean release, however it ends (see CLI.md).
//!
//! The rooms: this file holds the arguments, the dispatch, the NAME check
//! and `lock break`; [`target`] opens and acquires the lock a name stands
//! for; [`run`](mod@run) runs the command while holding it; [`status`] shows locks
//! (`lock status`, and the lock rows of `mproc ls`); [`hold`] is `--hold`,
//! `mproc unlock` and the keeper process.

use std::ffi::OsString;

use clap::{Args, Subcommand};

use crate::args::{parse_secs, Secs};
use crate::ctx::Ctx;
use crate::exit::{self, Failure};

pub(crate) mod hold;
mod run;
mod status;
mod target;

pub(crate) use status::{ls_json, summary};
pub(crate) use target::Target;

/// `mproc lock`: either a subcommand (`status`) or a command to run.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = crate::exit::TABLE,
    override_usage = "mproc lock [-s | -x] [-n | -w SECS] [-E N] [-F] [--tag TEXT] NAME -- CMD [ARGS]...\n       \
        mproc lock [-s | -x] [-n | -w SECS] [-E N] [-F] [--tag TEXT] NAME -c 'shell command'\n       \
        mproc lock --hold [--pid PID] [-s | -x] [-n | -w SECS] [-E N] NAME\n       \
        mproc lock -u [--pid PID] NAME       (same as mproc unlock)\n       \
        mproc lock status [NAME]...\n       \
        mproc lock break NAME"
)]
pub(crate) struct LockCmd {
    /// `status`.
    #[command(subcommand)]
    pub(crate) sub: Option<LockSub>,
    /// The arguments of the run form.
    #[command(flatten)]
    pub(crate) run: LockRunArgs,
}

/// The lock subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LockSub {
    /// List locks with their holder and waiters (all locks without NAME).
    Status {
        /// Locks to show.
        names: Vec<String>,
    },
    /// Free a lock whatever its state: the way out of a damaged lock word
    /// (exit 65). A dead holder needs no breaking; a live one loses its
    /// exclusion.
    Break {
        /// The lock to free.
        name: String,
    },
}

/// `mproc lock NAME -- CMD`.
#[derive(Debug, Args)]
pub(crate) struct LockRunArgs {
    /// Fail at once (exit 1, or -E) when the lock is held.
    #[arg(
        short = 'n',
        long = "nonblock",
        visible_aliases = ["nb", "nonblocking"],
        conflicts_with = "wait"
    )]
    pub(crate) nonblock: bool,
    /// Give up after SECS (2.5, 500ms, 2s, 1m, 1.5h; 0 = -n; "inf" = wait forever).
    #[arg(
        short = 'w',
        long = "wait",
        visible_alias = "timeout",
        value_name = "SECS",
        value_parser = parse_secs
    )]
    pub(crate) wait: Option<Secs>,
    /// Exit code when the lock is busy or the wait timed out (0..255).
    #[arg(
        short = 'E',
        long = "conflict-exit-code",
        value_name = "N",
        default_value_t = crate::exit::BUSY,
        value_parser = clap::value_parser!(u8)
    )]
    pub(crate) conflict_exit_code: u8,
    /// Text stored with an exclusive holding, shown by `mproc lock status` (up to 64 bytes).
    #[arg(long, value_name = "TEXT")]
    pub(crate) tag: Option<String>,
    /// Exclusive (write) lock: the default.
    #[arg(short = 'x', long = "exclusive", visible_short_alias = 'e')]
    pub(crate) exclusive: bool,
    /// Shared (read) lock: any number of shared holders, or one exclusive.
    #[arg(short = 's', long = "shared", conflicts_with = "exclusive")]
    pub(crate) shared: bool,
    /// Become the command (exec) instead of running it as a child: the
    /// lock is held until the command exits, however it exits.
    #[arg(short = 'F', long = "no-fork", conflicts_with_all = ["close", "hold", "unlock"])]
    pub(crate) no_fork: bool,
    /// Accepted for flock(1): the command's own children never inherit the
    /// lock (there is no descriptor to close).
    #[arg(short = 'o', long = "close")]
    pub(crate) close: bool,
    /// Take the lock for a script and return: it stays held until the
    /// process --pid (default: the parent, the script) exits, even killed,
    /// or `mproc unlock NAME`.
    #[arg(long, conflicts_with_all = ["shell", "cmd", "unlock"])]
    pub(crate) hold: bool,
    /// With --hold or -u: the process the holding belongs to [default: the
    /// parent of mproc].
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// Release a holding taken with --hold (as `mproc unlock NAME`).
    #[arg(short = 'u', long = "unlock", conflicts_with_all = ["shell", "cmd", "shared", "exclusive"])]
    pub(crate) unlock: bool,
    /// Run this string with the shell ($SHELL, else /bin/sh) as `sh -c STRING`.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "STRING",
        conflicts_with = "cmd"
    )]
    pub(crate) shell: Option<OsString>,
    /// The lock's name.
    #[arg(value_name = "NAME", required = true)]
    pub(crate) name: Option<String>,
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub(crate) cmd: Vec<OsString>,
}

/// Runs `mproc lock ...`.
pub(crate) fn run(ctx: &Ctx, args: LockCmd) -> anyhow::Result<u8> {
    match args.sub {
        Some(LockSub::Status { names }) => status::status(ctx, &names),
        Some(LockSub::Break { name }) => break_lock(ctx, &name),
        None if args.run.unlock => {
            let name = checked_name(&args.run)?;
            hold::unlock(ctx, &name, args.run.pid)
        }
        None if args.run.hold => hold::hold(ctx, &args.run),
        None => run::run_locked(ctx, args.run),
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

/// `mproc lock break NAME`.
fn break_lock(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let target = target::open_existing(&ns, name)?;
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

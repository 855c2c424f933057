//! The command-line syntax: clap structures (the first parsing stage) and
//! the value parsers they use. Validation that needs more than one flag
//! happens in the command modules.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use clap_complete::Shell;

/// Named cross-process locks and queues for every shell and language.
#[derive(Debug, Parser)]
#[command(
    name = "mproc",
    version,
    about = "Named cross-process locks and queues for every shell and language",
    long_about = "Named cross-process locks and queues for every shell and language.\n\n\
        Objects live in a namespace directory (--dir, MPROC_DIR, default /dev/shm/mproc-UID). \
        `mproc lock` runs a command while holding a named lock (flock(1) letters); \
        `mproc queue` moves messages between processes; `mproc demo` shows both at work.",
    after_help = crate::exit::TABLE,
    max_term_width = 100
)]
pub(crate) struct Cli {
    // MPROC_DIR and MPROC_URL are read by `Ctx`, not by clap: an
    // environment default would show in usage lines as if the flag had
    // been given.
    /// Namespace directory that holds the named objects [default: $MPROC_DIR when set and
    /// not empty].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Server that holds the named objects instead of a directory:
    /// redis://:PASSWORD@HOST:PORT/DB?prefix=NAME (all but HOST optional), rediss://... for TLS,
    /// redis+cluster://HOST:PORT,HOST:PORT/ for a Redis Cluster,
    /// redis+sentinel://HOST:PORT/MASTER_NAME for the primary Sentinel names
    /// [default: $MPROC_URL when set and not empty].
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// How long long-running commands (`lock` while waiting, the demos) keep
    /// retrying while the server is unreachable or not ready, in seconds
    /// (`inf`: forever, 0: never). Default 60. The outage is reported once on
    /// stderr; when it outlasts this, the command exits 75.
    #[arg(
        long,
        global = true,
        env = "MPROC_RETRY_FOR",
        value_name = "SECS",
        value_parser = parse_secs
    )]
    pub(crate) retry_for: Option<Secs>,
    /// One JSON object on stdout per command (NDJSON for streams); errors as JSON on stderr.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Less log output on stderr (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub(crate) quiet: u8,
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command while holding a named lock, shared or exclusive (flock(1)'s options).
    Lock(LockCmd),
    /// Release a lock taken for a script with `mproc lock --hold`.
    Unlock(UnlockArgs),
    /// The process that keeps a `--hold` holding (started by `mproc lock --hold`).
    #[command(name = "__lock-hold", hide = true)]
    LockHold(HoldArgs),
    /// Named bounded FIFO queues of byte messages.
    #[command(subcommand, after_help = crate::exit::TABLE)]
    Queue(QueueCmd),
    /// Run a command holding one of N units of a named semaphore (like GNU sem).
    Sem(crate::sem::SemArgs),
    /// Named events: set, clear, wait, status.
    #[command(subcommand)]
    Event(crate::event::EventCmd),
    /// List every object in the namespace.
    Ls,
    /// The tutorial's scenarios with real processes.
    #[command(subcommand)]
    Demo(DemoCmd),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Kill random producers, consumers and lock users for a while, then
    /// check that nothing was lost, duplicated or wedged.
    Torture(crate::torture::TortureArgs),
    /// One worker of `torture` (started by it).
    #[command(name = "__torture-worker", hide = true)]
    TortureWorker(crate::torture::WorkerArgs),
    /// One buyer of `demo tickets` (started by the demo).
    #[command(name = "__ticket-buyer", hide = true)]
    TicketBuyer(crate::demo::tickets::BuyerArgs),
    /// One producer of `demo pipeline` (started by the demo).
    #[command(name = "__pipeline-producer", hide = true)]
    PipelineProducer(crate::demo::pipeline::ProducerArgs),
    /// One consumer of `demo pipeline` (started by the demo).
    #[command(name = "__pipeline-consumer", hide = true)]
    PipelineConsumer(crate::demo::pipeline::ConsumerArgs),
    /// Print every crash point (NAME and the operations that reach it), one
    /// per line: `MPROC_CRASH_AT=NAME:K` SIGKILLs a process the K-th time it
    /// reaches NAME (builds with the `crash-points` feature only).
    #[cfg(feature = "crash-points")]
    CrashPoints,
    /// Measure queues and locks on this machine (and Python's Queue, if python3 is there).
    Bench(crate::bench::BenchArgs),
    /// One worker process of `bench` (started by it).
    #[command(name = "__bench-worker", hide = true)]
    BenchWorker(crate::bench::WorkerArgs),
}

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

/// `mproc unlock NAME`.
#[derive(Debug, Args)]
pub(crate) struct UnlockArgs {
    /// The process the holding belongs to [default: the parent of mproc].
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// The lock.
    pub(crate) name: String,
}

/// `mproc __lock-hold`: takes the lock, reports on stdout, keeps it.
#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    /// The process whose end releases the holding.
    #[arg(long)]
    pub(crate) watch_pid: u32,
    /// Its start time (`/proc/PID/stat` field 22).
    #[arg(long)]
    pub(crate) watch_start: u64,
    /// Shared.
    #[arg(long)]
    pub(crate) shared: bool,
    /// Do not wait.
    #[arg(long)]
    pub(crate) nonblock: bool,
    /// Wait at most this long.
    #[arg(long, value_parser = parse_secs)]
    pub(crate) wait: Option<Secs>,
    /// Tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// The lock.
    pub(crate) name: String,
}

/// A duration (every duration flag takes one); `None` means forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Secs(pub(crate) Option<Duration>);

/// Parses a duration: a non-negative decimal number with an optional unit,
/// `ms`, `s`, `m` or `h` (plain numbers are seconds: `0.5`, `500ms`, `2s`,
/// `1m`, `1.5h`), or `inf`.
pub(crate) fn parse_secs(s: &str) -> Result<Secs, String> {
    let t = s.trim();
    if matches!(t, "inf" | "infinity" | "forever") {
        return Ok(Secs(None));
    }
    let (number, unit) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((t, 1.0));
    let v: f64 = number.trim().parse().map_err(|_| {
        format!("{s:?} is not a duration (examples: 0.5, 500ms, 2s, 1m, 1.5h, inf)")
    })?;
    if !v.is_finite() {
        return Ok(Secs(None));
    }
    if v < 0.0 {
        return Err(format!("{s:?}: a duration may not be negative"));
    }
    Duration::try_from_secs_f64(v * unit)
        .map(|d| Secs(Some(d)))
        .map_err(|e| format!("{s:?}: {e}"))
}

/// [`parse_secs`] as seconds (infinite for `inf`).
pub(crate) fn parse_secs_f64(s: &str) -> Result<f64, String> {
    parse_secs(s).map(|d| d.0.map_or(f64::INFINITY, |d| d.as_secs_f64()))
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower, 0),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 4096, 64K, 32M)"))?;
    n.checked_mul(1usize << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `mproc queue ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCmd {
    /// Create a queue.
    Create {
        /// The queue's name.
        name: String,
        /// At most N messages at once (0 = no count limit).
        #[arg(long, value_name = "N", default_value_t = 0)]
        maxsize: usize,
        /// Byte budget of the messages in the queue (K, M, G suffixes): the
        /// largest message, and the memory (RAM, on tmpfs) the queue takes,
        /// give or take 1 MiB (default 1M).
        #[arg(long, value_name = "B", value_parser = parse_size)]
        max_bytes: Option<usize>,
        /// Succeed if the queue already exists.
        #[arg(long)]
        exist_ok: bool,
    },
    /// Put messages: each DATA is one message; without DATA, stdin is one message
    /// (or one per line with --lines, NUL-separated with -0).
    Put {
        /// The queue's name.
        name: String,
        /// The messages.
        #[arg(value_name = "DATA")]
        data: Vec<OsString>,
        /// Fail at once (exit 1) when the queue is full.
        #[arg(short = 'n', long = "nonblock", conflicts_with = "timeout")]
        nonblock: bool,
        /// Wait at most SECS for room for each message (500ms, 2s, 1m; 0 = -n, "inf" = forever).
        #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Secs>,
        /// Read stdin as one message per line (the newline is not part of it).
        #[arg(long, conflicts_with = "null")]
        lines: bool,
        /// Read stdin as NUL-separated messages.
        #[arg(short = '0', long = "null")]
        null: bool,
        /// Create the queue (with default options) if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Take messages and write their bytes to stdout exactly.
    Get {
        /// The queue's name.
        name: String,
        /// Fail at once (exit 1) when the queue is empty.
        #[arg(short = 'n', long = "nonblock", conflicts_with = "timeout")]
        nonblock: bool,
        /// Wait at most SECS for each message (500ms, 2s, 1m; 0 = -n, "inf" = forever).
        #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Secs>,
        /// Take K messages.
        #[arg(short = 'c', long, value_name = "K", default_value_t = 1,
              value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Write a newline after each message.
        #[arg(long, conflicts_with = "null")]
        lines: bool,
        /// Write a NUL after each message.
        #[arg(short = '0', long = "null")]
        null: bool,
        /// At-least-once: take each message under a lease and acknowledge it
        /// only once it is written; if this process dies first or the write
        /// fails, the message goes back to the queue.
        #[arg(long)]
        leased: bool,
    },
    /// Show the next message without taking it (exit 1 when empty).
    Peek {
        /// The queue's name.
        name: String,
        /// Write a newline after the message.
        #[arg(long)]
        lines: bool,
    },
    /// Print the number of messages in the queue.
    Len {
        /// The queue's name.
        name: String,
    },
    /// Print the queue's counters as eval-able key=value pairs.
    Stat {
        /// The queue's name.
        name: String,
    },
    /// Close the queue: puts fail, gets drain what is left and then exit 3.
    Close {
        /// The queue's name.
        name: String,
    },
    /// Discard every message in the queue.
    Purge {
        /// The queue's name.
        name: String,
    },
    /// Remove the queue from the namespace.
    Rm {
        /// The queues' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// No error when a queue does not exist.
        #[arg(short, long)]
        force: bool,
    },
    /// List every queue.
    Ls,
    /// Run CMD once per message, with the message on its stdin, until the queue
    /// is closed and drained.
    Consume(ConsumeArgs),
}

/// `mproc queue consume NAME [-j N] -- CMD [ARGS..]`.
#[derive(Debug, Args)]
#[command(override_usage = "mproc queue consume [-j N] [--halt] NAME -- CMD [ARGS]...")]
pub(crate) struct ConsumeArgs {
    /// Number of workers (commands running at once).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) jobs: u32,
    /// Stop taking messages after the first failing command.
    #[arg(long)]
    pub(crate) halt: bool,
    /// Run a message's command at most N times: a failed message is given
    /// back for another try until then (a message whose consumer dies is
    /// always delivered again).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) tries: u32,
    /// The queue's name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The command and its arguments.
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) cmd: Vec<OsString>,
}

/// `mproc demo ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DemoCmd {
    /// The ticket grab: buyer processes race for a few tickets in a JSON file.
    Tickets(crate::demo::tickets::TicketsArgs),
    /// Producer and consumer processes over a bounded queue.
    Pipeline(crate::demo::pipeline::PipelineArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn secs() {
        assert_eq!(
            parse_secs("0.3"),
            Ok(Secs(Some(Duration::from_millis(300))))
        );
        assert_eq!(parse_secs("0"), Ok(Secs(Some(Duration::ZERO))));
        assert_eq!(parse_secs("inf"), Ok(Secs(None)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
        let ms = |n| Ok(Secs(Some(Duration::from_millis(n))));
        assert_eq!(parse_secs("500ms"), ms(500));
        assert_eq!(parse_secs("2s"), ms(2000));
        assert_eq!(parse_secs("1m"), ms(60_000));
        assert_eq!(parse_secs("1.5h"), ms(5_400_000));
        assert_eq!(parse_secs("2"), ms(2000));
        assert!(parse_secs("2x").is_err());
        assert!(parse_secs("ms").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn lock_forms_parse() {
        let c = Cli::try_parse_from(["mproc", "lock", "-n", "db", "--", "echo", "-x"]).unwrap();
        let Command::Lock(l) = c.command else {
            panic!("not lock")
        };
        assert!(l.sub.is_none());
        assert!(l.run.nonblock);
        assert_eq!(l.run.name.as_deref(), Some("db"));
        assert_eq!(
            l.run.cmd,
            vec![OsString::from("echo"), OsString::from("-x")]
        );

        let c = Cli::try_parse_from(["mproc", "lock", "db", "sh", "-v"]).unwrap();
        let Command::Lock(l) = c.command else {
            panic!("not lock")
        };
        assert_eq!(l.run.cmd, vec![OsString::from("sh"), OsString::from("-v")]);
        assert_eq!(c.verbose, 0);

        let c = Cli::try_parse_from(["mproc", "lock", "status", "a", "b"]).unwrap();
        let Command::Lock(l) = c.command else {
            panic!("not lock")
        };
        assert!(matches!(l.sub, Some(LockSub::Status { names }) if names == ["a", "b"]));
    }
}

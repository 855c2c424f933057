//! The command-line syntax, assembled: the top-level [`Cli`] parser (the
//! global flags) and the [`Command`] enum of subcommands. Each command's
//! own arguments are defined beside its code, in its module; validation
//! that needs more than one flag happens there too.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::args::{parse_secs, Secs};
use crate::{bench, completions, demo, event, lock, queue, sem, torture};

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
    Lock(lock::LockCmd),
    /// Release a lock taken for a script with `mproc lock --hold`.
    Unlock(lock::hold::UnlockArgs),
    /// The process that keeps a `--hold` holding (started by `mproc lock --hold`).
    #[command(name = "__lock-hold", hide = true)]
    LockHold(lock::hold::HoldArgs),
    /// Named bounded FIFO queues of byte messages.
    #[command(subcommand, after_help = crate::exit::TABLE)]
    Queue(queue::QueueCmd),
    /// Run a command holding one of N units of a named semaphore (like GNU sem).
    Sem(sem::SemArgs),
    /// Named events: set, clear, wait, status.
    #[command(subcommand)]
    Event(event::EventCmd),
    /// List every object in the namespace.
    Ls,
    /// The tutorial's scenarios with real processes.
    #[command(subcommand)]
    Demo(demo::DemoCmd),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Kill random producers, consumers and lock users for a while, then
    /// check that nothing was lost, duplicated or wedged.
    Torture(torture::TortureArgs),
    /// One worker of `torture` (started by it).
    #[command(name = "__torture-worker", hide = true)]
    TortureWorker(torture::WorkerArgs),
    /// One buyer of `demo tickets` (started by the demo).
    #[command(name = "__ticket-buyer", hide = true)]
    TicketBuyer(demo::tickets::BuyerArgs),
    /// One producer of `demo pipeline` (started by the demo).
    #[command(name = "__pipeline-producer", hide = true)]
    PipelineProducer(demo::pipeline::ProducerArgs),
    /// One consumer of `demo pipeline` (started by the demo).
    #[command(name = "__pipeline-consumer", hide = true)]
    PipelineConsumer(demo::pipeline::ConsumerArgs),
    /// Print every crash point (NAME and the operations that reach it), one
    /// per line: `MPROC_CRASH_AT=NAME:K` SIGKILLs a process the K-th time it
    /// reaches NAME (builds with the `crash-points` feature only).
    #[cfg(feature = "crash-points")]
    CrashPoints,
    /// Measure queues and locks on this machine (and Python's Queue, if python3 is there).
    Bench(bench::BenchArgs),
    /// One worker process of `bench` (started by it).
    #[command(name = "__bench-worker", hide = true)]
    BenchWorker(bench::WorkerArgs),
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::CommandFactory;

    use super::*;
    use crate::lock::LockSub;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
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

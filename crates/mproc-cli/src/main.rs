//! `mproc`: named cross-process locks and queues for shells, over the
//! `mproc` library.
//!
//! `main` only maps the outcome of [`run`] to an exit code; every command
//! lives in its own module and reports failures as [`exit::Failure`]s, whose
//! codes form the one table printed by `mproc --help`.
//!
//! The layers, every dependency pointing down: `main` → [`cli`] (the
//! top-level parser, assembled from the commands' own arguments) → the
//! commands (`lock/`, `queue/`, `sem`, `event`, `ls`, `demo/`, `bench`,
//! `torture`, `completions`) → the leaves (`args`, `child`, `ctx`, `exit`,
//! `retry`, `rng`, `signals`, `sync_ls`) → [`sys`], the only module that
//! calls `libc`.

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, Parser};

mod args;
mod bench;
mod child;
mod cli;
mod completions;
mod ctx;
mod demo;
mod event;
mod exit;
mod lock;
mod ls;
mod queue;
mod retry;
mod rng;
mod sem;
mod signals;
mod sync_ls;
mod sys;
mod torture;

use crate::cli::{Cli, Command};
use crate::ctx::Ctx;
use crate::exit::Failure;

/// Whether errors are reported as JSON (set once `--json` is parsed).
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Parses the command line and runs the command; the `Ok` value is the exit
/// code of a command that ran to its end (including "busy" and the wrapped
/// command's own status).
fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return Ok(clap_exit(&e)),
    };
    JSON_ERRORS.store(cli.json, Ordering::Relaxed);
    init_tracing(cli.verbose, cli.quiet);
    if let Some(args::Secs(s)) = cli.retry_for {
        // Worker processes (demos) inherit the budget. Still one thread here.
        let v = s.map_or("inf".to_owned(), |d| d.as_secs_f64().to_string());
        std::env::set_var("MPROC_RETRY_FOR", v);
    }
    let ctx = Ctx::new(cli.dir, cli.json, cli.verbose, cli.quiet)
        .with_url(cli.url)
        .with_retry_for(cli.retry_for);
    tracing::debug!(dir = ?ctx.dir, json = ctx.json, "starting");
    let code = match cli.command {
        Command::Lock(args) => lock::run(&ctx, args)?,
        Command::Unlock(args) => lock::hold::unlock(&ctx, args.name.as_str(), args.pid)?,
        Command::LockHold(args) => lock::hold::keeper(&ctx, &args)?,
        Command::Queue(cmd) => queue::run(&ctx, cmd)?,
        Command::Sem(args) => sem::run(&ctx, &args)?,
        Command::Event(cmd) => event::run(&ctx, cmd)?,
        Command::Ls => ls::run(&ctx)?,
        #[cfg(feature = "crash-points")]
        Command::CrashPoints => {
            use std::io::Write;
            let mut out = io::stdout().lock();
            for (name, ops) in mproc::crash_points() {
                writeln!(out, "{name}\t{ops}")?;
            }
            0
        }
        Command::Demo(cmd) => demo::run(&ctx, cmd)?,
        Command::Completions(args) => completions::run(&args, Cli::command())?,
        Command::Torture(args) => torture::run(&ctx, &args)?,
        Command::TortureWorker(args) => torture::worker(&ctx, &args)?,
        Command::TicketBuyer(args) => demo::tickets::buyer(&ctx, &args)?,
        Command::PipelineProducer(args) => demo::pipeline::producer(&ctx, &args)?,
        Command::PipelineConsumer(args) => demo::pipeline::consumer(&ctx, &args)?,
        Command::Bench(args) => bench::run(&ctx, &args)?,
        Command::BenchWorker(args) => bench::worker(&ctx, &args)?,
    };
    Ok(ExitCode::from(code))
}

/// Prints clap's message and returns its exit code, with usage errors
/// remapped from clap's 2 to 64.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(exit::USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reports a failure on stderr (one line, or JSON with `--json`) and returns
/// its exit code. A broken pipe on stdout is a success: the reader has all
/// it wanted.
fn report(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    let failure = match e.downcast_ref::<Failure>() {
        Some(f) => f.clone(),
        None => Failure::internal(format!("{e:#}")),
    };
    let message = failure.message.replace('\n', " ");
    if JSON_ERRORS.load(Ordering::Relaxed) {
        let v = serde_json::json!({"error": {
            "kind": failure.kind,
            "code": failure.code,
            "message": message,
        }});
        ctx::err_line(&v.to_string());
    } else {
        ctx::err_line(&format!("mproc: {message}"));
    }
    ExitCode::from(failure.code)
}

/// Logs to stderr: warnings by default, `-v` info, `-vv` debug, `-vvv`
/// trace, `-q` errors only, `-qq` nothing; `RUST_LOG` overrides.
fn init_tracing(verbose: u8, quiet: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match (verbose, quiet) {
        (_, 1) => "error",
        (_, q) if q >= 2 => "off",
        (0, _) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(false)
        .event_format(LogFormat)
        .try_init();
}

/// Log lines in the style of the error lines: `mproc: warning: ...`.
struct LogFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LogFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "mproc[{}]: {level}: ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

//! `mproc queue consume NAME [-j N] -- CMD`: the producer-consumer runtime
//! for shells. N worker threads each take a message, run CMD with the
//! message on its stdin and wait for it, until the queue is closed and
//! drained.
//!
//! Each command sees `MPROC_QUEUE` (the queue's name), `MPROC_WORKER` (the
//! worker's number, from 0) and `MPROC_SEQ` (the message's number, from 1)
//! in its environment.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use mproc::{ByteQueue, GetError};
use serde_json::json;

use crate::args::{fmt_secs, TrailingCommand};
use crate::ctx::{self, Ctx};
use crate::exit::{self, Failure};
use crate::retry::{self, Outage};
use crate::signals;

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
    #[command(flatten)]
    pub(crate) command: TrailingCommand,
}

/// Shared state of the workers.
struct Shared {
    /// The queue.
    queue: ByteQueue,
    /// Its name.
    name: String,
    /// The command.
    argv: Vec<OsString>,
    /// Stop after the first failure.
    halt: bool,
    /// Deliveries of one message before a failure is final.
    tries: u32,
    /// Set when workers should stop taking messages.
    stop: AtomicBool,
    /// Messages taken so far.
    taken: AtomicU64,
    /// Commands that failed.
    failed: AtomicU64,
    /// The exit code of the first failing command.
    first_failure: Mutex<Option<u8>>,
    /// A queue error that ended a worker.
    error: Mutex<Option<Failure>>,
    /// Workers that stopped because their command could not be started.
    unstartable: AtomicU64,
    /// Why the last of them could not start it.
    start_error: Mutex<Option<String>>,
    /// A server outage in progress (`--retry-for`), shared by the workers
    /// so that it is reported once.
    outage: Mutex<Outage>,
}

/// What became of one message's command.
enum Ran {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed with this exit code.
    Failed(u8),
    /// It could not be started (`EMFILE`, `EAGAIN`, `ENOENT`...): it did
    /// not see the message.
    NotStarted(io::Error),
}

/// Whether `prog` names a runnable file, directly or through `PATH`.
fn resolvable(prog: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.as_os_str().as_encoded_bytes().contains(&b'/') {
        return runnable(prog).then(|| prog.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| runnable(p))
}

/// Runs `mproc queue consume`.
pub(crate) fn run(ctx: &Ctx, args: &ConsumeArgs) -> anyhow::Result<u8> {
    let Some(prog) = args.command.cmd.first() else {
        return Err(
            Failure::usage("a command is required: mproc queue consume NAME -- CMD").into(),
        );
    };
    if resolvable(Path::new(prog)).is_none() {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "unavailable",
            format!("cannot run '{}': command not found", prog.to_string_lossy()),
        )
        .into());
    }
    let ns = ctx.ns()?;
    let queue = super::open(&ns, &args.name)?;
    let shared = Shared {
        queue,
        name: args.name.clone(),
        argv: args.command.cmd.clone(),
        halt: args.halt,
        tries: args.tries,
        stop: AtomicBool::new(false),
        taken: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        error: Mutex::new(None),
        unstartable: AtomicU64::new(0),
        start_error: Mutex::new(None),
        outage: Mutex::new(ctx.outage()),
    };
    // A terminating signal stops the taking of new messages; the commands
    // in flight finish, then `mproc` ends by that signal.
    signals::watch()?;
    signals::defer_all();
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..args.jobs {
            let shared = &shared;
            s.spawn(move || worker(shared, w));
        }
    });
    let taken = shared.taken.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let first = shared.first_failure.lock().map(|g| *g).unwrap_or(None);
    let error = shared.error.lock().ok().and_then(|mut g| g.take());
    tracing::info!(
        "queue '{}': {taken} message(s) consumed in {}",
        args.name,
        fmt_secs(started.elapsed())
    );
    if ctx.json {
        ctx::out_json(&json!({
            "queue": args.name,
            "processed": taken,
            "failed": failed,
            "first_failure_status": first,
            "elapsed_s": started.elapsed().as_secs_f64(),
        }))?;
    }
    if let Some(sig) = signals::pending() {
        signals::die_by_signal(sig);
    }
    if let Some(e) = error {
        return Err(e.into());
    }
    let unstartable = shared.unstartable.load(Ordering::Relaxed);
    if unstartable == u64::from(args.jobs) {
        let why = shared
            .start_error
            .lock()
            .ok()
            .and_then(|mut g| g.take())
            .unwrap_or_default();
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "unavailable",
            format!(
                "queue '{}': cannot run '{}': {why}; its messages were given back \
                 ({} left in the queue)",
                args.name,
                prog.to_string_lossy(),
                shared.queue.len()
            ),
        )
        .into());
    }
    if failed > 0 {
        ctx::err_line(&format!(
            "mproc: queue '{}': {failed} of {taken} command(s) failed",
            args.name
        ));
        return Ok(first.unwrap_or(exit::SOFTWARE));
    }
    Ok(exit::OK)
}

impl Shared {
    /// After server trouble: waits the outage's next pause; false when the
    /// outage has outlasted `--retry-for`.
    fn retry(&self, msg: &str) -> bool {
        let msg = format!("queue '{}': {msg}", self.name);
        self.outage.lock().is_ok_and(|mut o| o.retry(&msg))
    }

    /// The server answered: ends an outage in progress.
    fn answered(&self) {
        if let Ok(mut o) = self.outage.lock() {
            o.ok();
        }
    }
}

/// One worker: take, run, repeat until the queue is closed and drained.
fn worker(sh: &Shared, w: u32) {
    let mut msg;
    loop {
        if sh.stop.load(Ordering::Relaxed) || signals::pending().is_some() {
            return;
        }
        // Leased: if this process dies while the command runs, the message
        // is delivered again to another consumer.
        let deadline = signals::slice_deadline(None).unwrap_or_else(Instant::now);
        let receipt = match sh.queue.get_leased_deadline(deadline) {
            Ok((m, r)) => {
                msg = m;
                r
            }
            Err(GetError::Empty) => continue,
            Err(GetError::Closed) => return,
            // Server trouble: wait (backing off) and take again, for as
            // long as --retry-for allows. Nothing was taken.
            Err(e) if retry::get_transient(&e).is_some_and(|m| sh.retry(&m)) => continue,
            Err(e) => {
                if let Ok(mut g) = sh.error.lock() {
                    g.get_or_insert(exit::from_get(&e, &sh.name, ""));
                }
                sh.stop.store(true, Ordering::Relaxed);
                return;
            }
        };
        sh.answered();
        let seq = sh.taken.fetch_add(1, Ordering::Relaxed) + 1;
        let outcome = match run_one(sh, w, seq, &msg) {
            Ran::Ok => Ok(()),
            Ran::Failed(code) => Err(code),
            Ran::NotStarted(e) => {
                // The command never saw the message: it goes back to the
                // queue, and this worker stops (the others go on).
                if let Err(e) = sh.queue.nack(&receipt) {
                    tracing::warn!("giving a message back: {e}");
                }
                ctx::err_line(&format!(
                    "mproc: queue '{}': cannot run '{}': {e}; the message was given back \
                     and worker {w} stops",
                    sh.name,
                    sh.argv[0].to_string_lossy()
                ));
                sh.taken.fetch_sub(1, Ordering::Relaxed);
                sh.unstartable.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut g) = sh.start_error.lock() {
                    *g = Some(e.to_string());
                }
                return;
            }
        };
        let retry = outcome.is_err() && receipt.deliveries() < sh.tries;
        // Through an outage too: an acknowledgement that never reaches the
        // server would have the message run again once its lease ends.
        let settled = loop {
            let r = if retry {
                sh.queue.nack(&receipt)
            } else {
                sh.queue.ack(&receipt)
            };
            match &r {
                Err(e) if retry::ack_transient(e).is_some_and(|m| sh.retry(&m)) => {}
                _ => break r,
            }
        };
        sh.answered();
        if let Err(e) = settled {
            tracing::warn!("message {seq}: {e}");
        }
        if retry {
            continue;
        }
        if let Err(code) = outcome {
            sh.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut g) = sh.first_failure.lock() {
                g.get_or_insert(code);
            }
            if sh.halt {
                sh.stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Runs the command on one message.
fn run_one(sh: &Shared, w: u32, seq: u64, msg: &[u8]) -> Ran {
    let Some((prog, rest)) = sh.argv.split_first() else {
        return Ran::Failed(exit::USAGE);
    };
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .env("MPROC_QUEUE", &sh.name)
        .env("MPROC_WORKER", w.to_string())
        .env("MPROC_SEQ", seq.to_string())
        .stdin(Stdio::piped());
    // The command dies with `mproc` (even by SIGKILL), so that a message
    // given back to the queue is never run twice at once.
    signals::die_with_parent(&mut cmd, true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ran::NotStarted(e),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        match stdin.write_all(msg) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => tracing::warn!("message {seq}: writing to the command: {e}"),
        }
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            ctx::err_line(&format!(
                "mproc: queue '{}': waiting for the command: {e}",
                sh.name
            ));
            return Ran::Failed(exit::SOFTWARE);
        }
    };
    if status.success() {
        return Ran::Ok;
    }
    let code = exit::child_code(status);
    ctx::err_line(&format!(
        "mproc: queue '{}': '{}' failed with {} on message {seq} (worker {w})",
        sh.name,
        prog.to_string_lossy(),
        describe(status)
    ));
    Ran::Failed(code)
}

/// "exit status 3" or "signal 9".
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".into(),
    }
}

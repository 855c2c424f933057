//! Starting a child by a bare `fork(2)` ([`StartMethod::Fork`](super::StartMethod::Fork)):
//! refused unless the process is single-threaded; the copy runs the
//! function, sends its [`Outcome`] and exits at once.

use std::fs::File;
use std::io::{self, Write};

use serde::Serialize;

use super::builder::ProcessBuilder;
use super::error::SpawnError;
use super::outcome::{panic_message, Outcome};
use super::parent::Process;
use crate::sys::Forked;

/// Runs `f(args)` in a fork of this (single-threaded) process.
pub(super) fn fork<A, R>(
    opts: ProcessBuilder,
    args: A,
    f: fn(A) -> R,
) -> Result<Process<R>, SpawnError>
where
    R: Serialize,
{
    if opts.stdin.is_some() || opts.stdout.is_some() || opts.stderr.is_some() {
        return Err(SpawnError::ForkUnsound(
            "custom standard streams need StartMethod::Spawn".into(),
        ));
    }
    let threads = crate::sys::thread_count()
        .map_err(|e| SpawnError::ForkUnsound(format!("cannot count threads: {e}")))?;
    if threads != 1 {
        return Err(SpawnError::ForkUnsound(format!(
            "this process has {threads} threads; fork is only sound with one"
        )));
    }
    let (result_r, result_w) = crate::sys::pipe()?;
    // Buffered output must not be written twice.
    let _ = io::stdout().flush();
    let parent = crate::sys::my_pid();
    // SAFETY: the process is single-threaded (checked just above; only
    // this thread could have started another since).
    let pid = match unsafe { crate::sys::fork() }? {
        Forked::Parent(pid) => pid,
        Forked::Child => {
            drop(result_r);
            if let Some(n) = &opts.name {
                std::env::set_var("MPROC_PROCESS_NAME", n);
            }
            if opts.daemon && !crate::sys::die_with_parent(parent) {
                crate::sys::exit_now(70);
            }
            let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(args))) {
                Ok(r) => match postcard::to_allocvec(&r) {
                    Ok(bytes) => Outcome::Done(bytes),
                    Err(e) => Outcome::Failed(format!("cannot encode the result: {e}")),
                },
                Err(payload) => Outcome::Panicked(panic_message(&*payload)),
            };
            let code = outcome.exit_status();
            if let Ok(bytes) = postcard::to_allocvec(&outcome) {
                let _ = File::from(result_w).write_all(&bytes);
            }
            let _ = io::stdout().flush();
            // Without the parent's exit handlers or destructors a second time.
            crate::sys::exit_now(code)
        }
    };
    drop(result_w);
    drop(args);
    Ok(Process::started(pid, File::from(result_r), opts.daemon))
}
